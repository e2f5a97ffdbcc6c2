"""Benchmark: time from heal to all-Ready on the lab, and idle API CPU.

Run as root, with no lab up:
    .venv/bin/python benchmarks/heal_to_ready.py [--runs 5]
      [--k3s-version v1.28.15+k3s-2d0661e3]

Per run: cut the at-risk nodes off from the control plane with
chaosk3s.actions.partition_roles until all of them are NotReady, heal,
and measure until every node is Ready again, twice: from the API's own
Ready lastTransitionTime (second resolution) and from chaosk3s's
readiness watch. Before the runs, the API server's CPU use on the idle
default lab is measured over 20 s.
"""

import argparse
import os
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

from chaosk3s import actions, probes
from chaosk3s.kube import ready_status
from chaosk3s.lab.cluster import Lab
from chaosk3s.lab.procs import pid_of
from chaosk3s.lab.spec import default_spec
from chaosk3s.lab.state import LabState
from chaosk3s.run import end_run
from chaosk3s.target import forget_targets, get_target

CONFIG = {"target": "lab"}


def cpu_seconds(pid: int) -> float:
    """utime + stime of pid and its children, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


def idle_api_cpu(lab: Lab, seconds: float = 20) -> float:
    spec = lab.spec()
    service = next(s for s in lab.services(spec, spec.node("server-cp-0"))
                   if s.name == "k3s")
    leader = pid_of(service)
    # the python child of the restart loop is what serves the API
    child = int(Path(f"/proc/{leader}/task/{leader}/children")
                .read_text().split()[0])
    before = cpu_seconds(child)
    time.sleep(seconds)
    return (cpu_seconds(child) - before) / seconds * 100


def one_run(at_risk: list[str]) -> tuple[float, float]:
    fault = actions.partition_roles("at-risk", "control-plane", ttl=120,
                                    configuration=CONFIG)
    deadline = time.monotonic() + 60
    while set(at_risk) - set(probes.nodes_not_ready(configuration=CONFIG)):
        if time.monotonic() > deadline:
            raise SystemExit("at-risk nodes never went NotReady")
        time.sleep(0.5)
    healed_wall = datetime.now().astimezone()
    actions.heal_partitions(fault["fault_id"], configuration=CONFIG)
    waited = probes.wait_for_nodes_ready(60, configuration=CONFIG)
    if not waited["all_ready"]:
        raise SystemExit(f"not Ready after 60 s: {waited['not_ready']}")
    items = get_target(CONFIG).kube.list_nodes()["items"]
    transitions = [datetime.fromisoformat(ready_status(i)[1].replace(
        "Z", "+00:00")) for i in items
        if i["metadata"]["name"] in at_risk]
    api_seconds = (max(transitions) - healed_wall).total_seconds()
    return api_seconds, waited["elapsed_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--k3s-version", default="v1.28.15+k3s-2d0661e3")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        os.environ["CHAOSK3S_STATE_DIR"] = str(Path(root) / "state")
        os.environ["CHAOSK3S_LEDGER_DIR"] = str(Path(root) / "ledger")
        lab = Lab(LabState(Path(root) / "state"))
        lab.up(default_spec(args.k3s_version))
        try:
            time.sleep(5)
            print(f"machine: {os.cpu_count()} cores; K3s "
                  f"{args.k3s_version}; {args.runs} runs")
            print(f"API server (server-cp-0 k3s) CPU at idle: "
                  f"{idle_api_cpu(lab):.1f}% of one core over 20 s")
            at_risk = probes.at_risk_nodes(CONFIG)
            results = [one_run(at_risk) for _ in range(args.runs)]
        finally:
            forget_targets()
            end_run()
            lab.down()
    api = [r[0] for r in results]
    watch = [r[1] for r in results]
    print(f"heal -> all Ready, API lastTransitionTime: median "
          f"{statistics.median(api):.1f}s, max {max(api):.1f}s "
          f"(runs: {', '.join(f'{x:.1f}' for x in api)})")
    print(f"heal -> all Ready, seen by the watch: median "
          f"{statistics.median(watch):.2f}s, max {max(watch):.2f}s")


if __name__ == "__main__":
    main()
