"""Benchmark: the API and the readiness probes on a lab with virtual nodes.

Run as root, with no lab up:
    .venv/bin/python benchmarks/probes_at_scale.py [--virtual 5000] [--runs 5]

Brings up the default lab plus N virtual nodes, then measures, each as the
median of --runs:
- listing every node through the API (GET /api/v1/nodes, raw HTTP), as a
  NodeList and as the Table `kubectl get nodes` (and chaosk3s) asks for;
- chaosk3s.probes.all_nodes_ready against chaostoolkit-kubernetes'
  all_nodes_must_be_ready_to_schedule, in the same run;
- the delay from a Ready transition stored by the API (PATCH returns) to
  chaosk3s's readiness watch seeing it;
and takes the lab down.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from chaosk3s import probes
from chaosk3s.kube import TABLE_ACCEPT, Kube
from chaosk3s.lab.access import api_urls
from chaosk3s.lab.cluster import Lab
from chaosk3s.lab.spec import DEFAULT_NODES, parse_spec
from chaosk3s.lab.state import LabState
from chaosk3s.readiness import ReadinessWatch

_http = requests.Session()
_http.trust_env = False


def timed(func, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def chaosk8s_median(kubeconfig: str, runs: int) -> tuple[float, str]:
    """The peer's probe, timed in a process of its own: it reads KUBECONFIG
    when the kubernetes package is first imported."""
    code = ("import statistics, time\n"
            "from chaosk8s.node.probes import "
            "all_nodes_must_be_ready_to_schedule as probe\n"
            "times = []\n"
            f"for _ in range({runs}):\n"
            "    start = time.perf_counter(); result = probe()\n"
            "    times.append(time.perf_counter() - start)\n"
            "print(statistics.median(times), result)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True, timeout=600,
                         env={**os.environ, "KUBECONFIG": kubeconfig})
    seconds, result = out.stdout.split()
    return float(seconds), result


def watch_delays(url: str, kube: Kube, samples: int) -> list[float]:
    """PATCH a scratch node's Ready back and forth; time until seen."""
    name = "bench-scratch"
    _http.post(f"{url}/api/v1/nodes", json={
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name}},
        timeout=10)
    watch = ReadinessWatch(kube).start()
    delays = []
    try:
        for index in range(samples):
            status = "True" if index % 2 == 0 else "False"
            reply = _http.patch(
                f"{url}/api/v1/nodes/{name}/status", timeout=10,
                headers={"Content-Type": "application/merge-patch+json"},
                json={"status": {"conditions": [
                    {"type": "Ready", "status": status}]}})
            reply.raise_for_status()
            stored = time.perf_counter()
            seen = watch.wait(lambda s, v=status: name in s and
                              s[name].ready == v, 5)
            delays.append(time.perf_counter() - stored if seen else 5.0)
    finally:
        watch.stop()
        _http.delete(f"{url}/api/v1/nodes/{name}", timeout=10)
    return delays


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--virtual", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        state = LabState(Path(root) / "state")
        os.environ["CHAOSK3S_STATE_DIR"] = str(state.root)
        lab = Lab(state)
        spec = parse_spec({"nodes": DEFAULT_NODES,
                           "virtual_nodes": args.virtual})
        lab.up(spec)
        try:
            run(args, state, spec)
        finally:
            lab.down()


def run(args, state: LabState, spec) -> None:
    url = api_urls(spec)[0]
    total = len(spec.nodes) + args.virtual
    kube = Kube(str(state.kubeconfig), ["chaosk3s-lab"])
    deadline = time.monotonic() + 60
    while len(kube.list_nodes()["items"]) < total:
        if time.monotonic() > deadline:
            raise SystemExit("virtual nodes did not register in time")
        time.sleep(0.5)
    listing, reply = timed(lambda: _http.get(f"{url}/api/v1/nodes",
                                             timeout=30), args.runs)
    print(f"machine: {os.cpu_count()} cores; {total} nodes "
          f"({args.virtual} virtual); median of {args.runs}")
    print(f"GET /api/v1/nodes: {listing:.3f}s "
          f"({len(reply.content) / 1e6:.1f} MB)")
    rows, reply = timed(lambda: _http.get(
        f"{url}/api/v1/nodes?includeObject=None", timeout=30,
        headers={"Accept": TABLE_ACCEPT}), args.runs)
    print(f"GET /api/v1/nodes as a Table: {rows:.3f}s "
          f"({len(reply.content) / 1e6:.1f} MB)")
    config = {"target": "lab"}
    ours, ready = timed(lambda: probes.all_nodes_ready(
        configuration=config), args.runs)
    theirs, their_ready = chaosk8s_median(str(state.kubeconfig), args.runs)
    print(f"chaosk3s all_nodes_ready: {ours:.3f}s -> {ready}")
    print(f"chaosk8s all_nodes_must_be_ready_to_schedule: {theirs:.3f}s "
          f"-> {their_ready}")
    print(f"speed-up: {theirs / ours:.1f}x")
    delays = watch_delays(url, kube, 20)
    print(f"Ready transition -> watch: median "
          f"{statistics.median(delays) * 1000:.1f} ms, max "
          f"{max(delays) * 1000:.1f} ms over {len(delays)} transitions")


if __name__ == "__main__":
    main()
