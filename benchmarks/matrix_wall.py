"""Benchmark: `chaosk3s matrix` wall time against one run's, and the
memory each run takes (its lab's processes, and its `chaos run`).

Run as root:
  .venv/bin/python benchmarks/matrix_wall.py \\
      experiments/etcd_only_partition.json \\
      --releases v1.28.15+k3s1,v1.28.15+k3s-2d0661e3,v1.31.4+k3s1 \\
      --jobs 3 [--single v1.31.4+k3s1] [--var KEY=VALUE ...]

With --single it first times a one-release matrix of that release (one
run's wall time, lab up and down included), then the whole matrix.
Memory is sampled every 0.5 s while the matrix runs: per lab, the sum
of its processes' resident memory (RSS; shared pages are counted in
every process, so this over-counts) and of their proportional share
(PSS, from /proc/PID/smaps_rollup: shared pages split between their
users, so the sums add up); the same for the `chaos run` processes.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from chaosk3s.lab import hostnet

GIB = 1024 ** 3


def _kib(pid: int, path: str, key: str) -> int:
    try:
        text = Path(f"/proc/{pid}/{path}").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def _memory(pids: list[int]) -> tuple[int, int]:
    """(RSS, PSS) of the processes, in bytes."""
    return (sum(_kib(p, "status", "VmRSS:") for p in pids) * 1024,
            sum(_kib(p, "smaps_rollup", "Pss:") for p in pids) * 1024)


def lab_pids() -> dict[str, list[int]]:
    """Each lab's processes (in its node namespaces), by lab name."""
    return {name: [pid for namespace in lab["namespaces"]
                   for pid in hostnet.namespace_pids(namespace)]
            for name, lab in hostnet.labs_on_machine().items()}


def chaos_pids(marker: str) -> list[int]:
    """The `chaos run` processes writing under marker."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"run" in cmdline and any(marker.encode() in part
                                     for part in cmdline):
            found.append(int(proc.name))
    return found


class Sampler(threading.Thread):
    def __init__(self, marker: str):
        super().__init__(daemon=True)
        self.marker, self.done = marker, threading.Event()
        self.lab_peak = (0, 0)  # the largest one lab reached
        self.chaos_peak = (0, 0)  # one `chaos run` at most
        self.total_peak = (0, 0)  # everything at once
        self.labs_at_once = 0

    def run(self) -> None:
        while not self.done.wait(0.5):
            labs = lab_pids()
            per_lab = [_memory(p) for p in labs.values()]
            chaos = [_memory([p]) for p in chaos_pids(self.marker)]
            self.labs_at_once = max(self.labs_at_once, len(labs))
            self.lab_peak = max([self.lab_peak, *per_lab], key=lambda m: m[1])
            self.chaos_peak = max([self.chaos_peak, *chaos],
                                  key=lambda m: m[1])
            total = tuple(map(sum, zip(*per_lab, *chaos, strict=False))) \
                if per_lab or chaos else (0, 0)
            self.total_peak = max(self.total_peak, total,
                                  key=lambda m: m[1])


def matrix(experiment: str, releases: str, jobs: int, variables: list[str],
           out: Path) -> tuple[float, dict, Sampler]:
    argv = [sys.executable, "-m", "chaosk3s.cli", "matrix", experiment,
            "--releases", releases, "--jobs", str(jobs), "--out", str(out)]
    for variable in variables:
        argv += ["--var", variable]
    sampler = Sampler(str(out))
    sampler.start()
    began = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.monotonic() - began
    sampler.done.set()
    sampler.join()
    if not (out / "matrix.json").exists():
        sys.exit(f"the matrix was refused:\n{done.stderr}")
    return wall, json.loads((out / "matrix.json").read_text()), sampler


def _mib(value: int) -> str:
    return f"{value / 2**20:.0f} MiB"


def report(name: str, wall: float, result: dict, sampler: Sampler) -> None:
    print(f"{name}: wall {wall:.1f} s, exit {result['exit_code']}")
    for run in result["runs"]:
        print(f"  {run['release']:<24} {run['verdict']:<10} run "
              f"{run['run_seconds']} s")
    slot = sampler.lab_peak[1] + sampler.chaos_peak[1]
    slot_rss = sampler.lab_peak[0] + sampler.chaos_peak[0]
    print(f"  one lab at most: RSS {_mib(sampler.lab_peak[0])}, PSS "
          f"{_mib(sampler.lab_peak[1])}; one chaos run: RSS "
          f"{_mib(sampler.chaos_peak[0])}, PSS {_mib(sampler.chaos_peak[1])}"
          f"; {sampler.labs_at_once} lab(s) at once, all together RSS "
          f"{_mib(sampler.total_peak[0])}, PSS {_mib(sampler.total_peak[1])}")
    if slot:
        print(f"  runs that fit in 24 GiB: {int(24 * GIB // slot)} by PSS, "
              f"{int(24 * GIB // slot_rss)} by RSS (lab + its chaos run)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("experiment")
    parser.add_argument("--releases", required=True)
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--single", help="first time a one-run matrix of "
                        "this release")
    parser.add_argument("--var", action="append", default=[])
    args = parser.parse_args()
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    print(f"machine: {os.cpu_count()} cores, {memory / GIB:.1f} GiB")
    with tempfile.TemporaryDirectory() as root:
        if args.single:
            report(f"one run ({args.single})", *matrix(
                args.experiment, args.single, 1, args.var,
                Path(root) / "single"))
        report(f"matrix of {len(args.releases.split(','))} releases, "
               f"--jobs {args.jobs}", *matrix(
                   args.experiment, args.releases, args.jobs, args.var,
                   Path(root) / "matrix"))


if __name__ == "__main__":
    main()
