"""Wall time of the lab tier, serially and in parallel labs (pytest-xdist).

Run as root:  .venv/bin/python benchmarks/lab_tier_parallel.py [--jobs 0 2]
              [--paths tests/lab/test_x.py ...] [-- PYTEST-ARGS...]

For each value of --jobs, one pytest session over the lab tier as
scripts/test runs it, without the tests marked solo (`-m "lab and not
solo and not equivalence and not compat" tests/lab`): 0 runs it
serially (one lab at a time, the default lab); N > 0 with `-n N --dist
loadfile`, each worker on a lab of its own (tests/lab/conftest.py), each
test file on one worker so module-wide labs are built once. Prints, per
session, the wall time, the pass/fail/skip counts from its JUnit XML,
the machine's load average and the slowest files, then one JSON line
with every figure (docs/benchmarks.md records them). The whole machine
is needed: run it under the lab lock, nothing else running.
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What scripts/test runs of the lab tier (the equivalence tier apart).
SELECTION = ["-m", "lab and not solo and not equivalence and not compat"]


def session(jobs: int, paths: list[str], extra: list[str]) -> dict:
    """One pytest session; its wall time and outcome counts."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        argv = [sys.executable, "-m", "pytest", "-q", "-p",
                "no:cacheprovider", f"--junitxml={junit}", *SELECTION,
                *paths,
                *(["-n", str(jobs), "--dist", "loadfile"] if jobs else []),
                *extra]
        started = time.monotonic()
        done = subprocess.run(argv, cwd=ROOT, capture_output=True,
                              text=True, check=False)
        wall = time.monotonic() - started
        counts, files = _outcomes(junit)
    tail = done.stdout.strip().splitlines()[-1:] or [""]
    return {"jobs": jobs, "wall_s": round(wall, 1), "exit": done.returncode,
            **counts, "load1": os.getloadavg()[0], "summary": tail[0],
            "slowest_files": files[:5],
            "failures": _failed(done.stdout)}


def _outcomes(junit: Path) -> tuple[dict, list]:
    counts = collections.Counter()
    per_file: dict[str, float] = collections.defaultdict(float)
    if not junit.exists():
        return {"passed": 0, "failed": 0, "skipped": 0}, []
    for case in ElementTree.parse(junit).iter("testcase"):
        kinds = {child.tag for child in case}
        outcome = ("failed" if kinds & {"failure", "error"} else
                   "skipped" if "skipped" in kinds else "passed")
        counts[outcome] += 1
        per_file[case.get("classname", "?")] += float(case.get("time", 0))
    slowest = sorted(per_file.items(), key=lambda kv: -kv[1])
    return ({k: counts[k] for k in ("passed", "failed", "skipped")},
            [(name, round(seconds)) for name, seconds in slowest])


def _failed(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines()
            if line.startswith(("FAILED", "ERROR"))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--paths", nargs="+", default=["tests/lab"],
                        help="test files or directories (default: the "
                        "whole lab tier)")
    parser.add_argument("extra", nargs="*", help="more pytest arguments")
    args = parser.parse_args()
    results = []
    for jobs in args.jobs:
        result = session(jobs, args.paths, args.extra)
        results.append(result)
        label = f"-n {jobs}" if jobs else "serial"
        print(f"{label}: {result['wall_s']:.0f} s wall, {result['passed']} "
              f"passed, {result['failed']} failed, {result['skipped']} "
              f"skipped (exit {result['exit']}, load {result['load1']:.1f})",
              flush=True)
        for name, seconds in result["slowest_files"]:
            print(f"    {seconds:>5} s  {name}")
        for line in result["failures"]:
            print(f"    {line}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
