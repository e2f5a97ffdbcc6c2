"""Benchmark: apply and heal a partition, and a degradation (tc),
across 20 nodes, over netns and over SSH.

Run as root:  .venv/bin/python benchmarks/fault_apply.py [--runs 5]
              [--kinds partition,degradation]

Builds 20 namespaces ckt-n00..ckt-n19 on bridge ckt-br0 (10.213.99.0/24,
never the lab's names), starts sshd (chaosk3s.lab.ssh) in each, and cuts
the first ten from the last ten in both directions (10 peers per node,
one iptables-restore per node), then degrades the same 200 links (a
100 Mbit/s rate: one root htb, one class and ten u32 filters per node;
a rate, because netem is not in every kernel, this machine's included).
Prints the median wall time of apply (reach every node, then load its
rules) and heal, per kind and transport; for SSH also the first, cold
apply (opening the master connections). Removes everything it made,
also on failure.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaosk3s.faults.apply import apply_plan, heal, read_active  # noqa: E402
from chaosk3s.lab import procs  # noqa: E402
from chaosk3s.lab import ssh as labssh  # noqa: E402
from chaosk3s.model import Cut, Degradation, FaultPlan, Netem  # noqa: E402
from chaosk3s.transports import (  # noqa: E402
    NetnsTransport,
    SshTransport,
    close_all,
)
from tests.lab import ckt_net  # noqa: E402

NODES = [f"n{i:02d}" for i in range(20)]
TTL = 300.0  # never reached: every run heals


def partition(net: ckt_net.Net, run: int) -> FaultPlan:
    left, right = NODES[:10], NODES[10:]
    cuts = [Cut(a, b, net.nodes[b]) for a in left for b in right]
    cuts += [Cut(b, a, net.nodes[a]) for a in left for b in right]
    return FaultPlan(f"bench-{run}", tuple(cuts), ttl_seconds=TTL)


def degradation(net: ckt_net.Net, run: int) -> FaultPlan:
    left, right, slow = NODES[:10], NODES[10:], Netem(rate_bits=10**8)
    items = [Degradation(a, b, net.nodes[b], slow) for a in left
             for b in right]
    items += [Degradation(b, a, net.nodes[a], slow) for a in left
              for b in right]
    return FaultPlan(f"bench-d{run}", degradations=tuple(items),
                     ttl_seconds=TTL)


KINDS = {"partition": partition, "degradation": degradation}


def measure(net, transports, runs: int, state: str,
            build=partition) -> dict:
    applies, heals = [], []
    for run in range(runs):
        plan = build(net, run)
        started = time.monotonic()
        apply_plan(plan, transports, state)
        applies.append(time.monotonic() - started)
        started = time.monotonic()
        heal(transports, plan, state)
        heals.append(time.monotonic() - started)
    left = [o for o in read_active(transports, state) if o.active]
    assert not left, f"rules left behind on {[o.node for o in left]}"
    return {"apply": applies, "heal": heals}


def report(name: str, result: dict) -> None:
    applies, heals = result["apply"], result["heal"]
    print(f"{name}: apply median {statistics.median(applies):.2f}s "
          f"(runs {', '.join(f'{a:.2f}' for a in applies)}), "
          f"heal median {statistics.median(heals):.2f}s "
          f"(runs {', '.join(f'{h:.2f}' for h in heals)})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kinds", default="partition,degradation")
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    print(f"machine: {os.cpu_count()} cores; 20 nodes, 200 links "
          f"(10 peers per node, both ways); runs: {args.runs}")
    net, services = ckt_net.create(NODES), []
    with tempfile.TemporaryDirectory() as root:
        try:
            layout = labssh.SshLayout(Path(root) / "ssh")
            for node in NODES:
                services.append(ckt_net.start_sshd(net, layout, node))
            state = str(Path(root) / "run")
            netns = {n: NetnsTransport(n, net.ns(n)) for n in NODES}
            ssh = {n: SshTransport(n, labssh.client_access(
                layout, net.nodes[n])) for n in NODES}
            for kind in kinds:
                build = KINDS[kind]
                report(f"{kind} netns", measure(net, netns, args.runs,
                                                state, build))
                if kind == kinds[0]:
                    cold = measure(net, ssh, 1, state, build)
                    print(f"{kind} ssh cold (opens 20 master connections):"
                          f" apply {cold['apply'][0]:.2f}s, heal "
                          f"{cold['heal'][0]:.2f}s")
                report(f"{kind} ssh (masters open)",
                       measure(net, ssh, args.runs, state, build))
        finally:
            close_all()
            procs.stop(services)
            ckt_net.destroy(net)


if __name__ == "__main__":
    main()
