"""Benchmark: lab up (until every node is Ready in the API) and down.

Run as root:  .venv/bin/python benchmarks/lab_lifecycle.py [--runs 5]
Prints the median of each spec's up and down times, and the peak resident
memory of all lab processes summed, sampled for two seconds after up.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from chaosk3s.lab import hostnet
from chaosk3s.lab.cluster import Lab
from chaosk3s.lab.spec import default_spec, parse_spec
from chaosk3s.lab.state import LabState
from chaosk3s.namedlabs import LabNames


def large_spec():
    """3 etcd-only + 2 control-plane-only + 20 agents (25 nodes)."""
    nodes = [{"name": "server-etcd-0", "role": "etcd"}]
    nodes += [{"name": f"server-etcd-{i}", "role": "etcd",
               "server": "server-etcd-0"} for i in (1, 2)]
    nodes += [{"name": f"server-cp-{i}", "role": "control-plane",
               "server": "server-etcd-0"} for i in (0, 1)]
    nodes += [{"name": f"agent-{i}", "role": "agent",
               "server": "server-etcd-0"} for i in range(20)]
    return parse_spec({"nodes": nodes}, source="3 etcd + 2 cp + 20 agents")


def lab_rss_mib() -> float:
    total = 0
    for namespace in hostnet.list_lab_namespaces(LabNames()):
        for pid in hostnet.namespace_pids(namespace):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def measure(spec, runs: int) -> dict:
    ups, downs, peaks = [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as root:
            lab = Lab(LabState(Path(root) / "state"))
            started = time.monotonic()
            lab.up(spec)
            ups.append(time.monotonic() - started)
            peak, until = 0.0, time.monotonic() + 2
            while time.monotonic() < until:
                peak = max(peak, lab_rss_mib())
                time.sleep(0.2)
            peaks.append(peak)
            started = time.monotonic()
            lab.down()
            downs.append(time.monotonic() - started)
    return {"up": statistics.median(ups), "down": statistics.median(downs),
            "peak_mib": max(peaks), "ups": ups}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; runs per spec: {args.runs}")
    for name, spec in (("default (6 nodes)", default_spec()),
                       ("3 etcd + 2 cp + 20 agents", large_spec())):
        result = measure(spec, args.runs)
        print(f"{name}: up median {result['up']:.2f}s "
              f"(runs {', '.join(f'{u:.2f}' for u in result['ups'])}), "
              f"down median {result['down']:.2f}s, "
              f"peak lab RSS {result['peak_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
