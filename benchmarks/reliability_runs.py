"""Run the heal's failure scenarios N times and count what each left.

Run as root:  .venv/bin/python benchmarks/reliability_runs.py [--runs 5]
              [--wrap /path/to/lock-wrapper]

One pytest session per run over the reliability tests
(tests/lab/test_reliability.py, test_reliability_ssh.py,
test_dual_stack.py); each test asserts afterwards that nothing chaosk3s
made is left (no chain, no timer process, no stopped K3s, no open ledger
entry) and each lab fixture that no namespace, link or process is. With
--wrap, each session runs under that command (e.g. a machine-wide lab
lock, so other users get the lab between runs). Prints, per scenario,
how many runs passed and failed, and after all runs what is left on the
machine: lab namespaces and links, chaosk3s processes, CHAOSK3S rules in
the host's own tables.
"""

import argparse
import collections
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ["tests/lab/test_reliability.py", "tests/lab/test_reliability_ssh.py",
         "tests/lab/test_dual_stack.py"]


def one_run(wrap: list[str], report: Path) -> dict[str, str]:
    subprocess.run([*wrap, sys.executable, "-m", "pytest", "-q", "-p",
                    "no:cacheprovider", f"--junitxml={report}", *FILES],
                   cwd=ROOT, check=False, stdout=subprocess.DEVNULL)
    outcomes = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        name = case.get("name")
        failed = case.find("failure") is not None or \
            case.find("error") is not None
        skipped = case.find("skipped") is not None
        outcomes[name] = "skipped" if skipped else (
            "failed" if failed else "passed")
    return outcomes


def leftovers() -> list[str]:
    def lines(*argv: str) -> list[str]:
        out = subprocess.run(list(argv), capture_output=True, text=True,
                             check=False).stdout
        return [line for line in out.splitlines() if line.strip()]
    found = [f"netns {n}" for n in lines("ip", "netns", "list")
             if n.startswith(("ck3s-", "ckt-"))]
    found += [f"link {link}" for link in lines("ip", "-o", "link")
              if " ck3s" in link or " ckt-" in link]
    found += [f"process {p}" for p in lines("ps", "-eo", "pid,args")
              if ("chaosk3s.lab" in p or "chaosk3s_timer=" in p
                  or "/etcd " in p) and "reliability_runs" not in p]
    found += [f"host rule {r}" for r in lines("iptables", "-S")
              if "CHAOSK3S" in r]
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--wrap", default="", help="command to run each "
                        "session under (e.g. a lock wrapper)")
    parser.add_argument("--leftovers", action="store_true",
                        help="only list what is left on the machine")
    args = parser.parse_args()
    if args.leftovers:
        left = leftovers()
        print("left on the machine: " + ("; ".join(left) if left else
                                         "nothing"))
        return
    wrap = args.wrap.split() if args.wrap else []
    counts: dict[str, collections.Counter] = collections.defaultdict(
        collections.Counter)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            outcomes = one_run(wrap, Path(tmp) / f"run{run}.xml")
            for name, outcome in outcomes.items():
                counts[name][outcome] += 1
            print(f"run {run + 1}/{args.runs}: "
                  f"{sum(o == 'passed' for o in outcomes.values())}/"
                  f"{len(outcomes)} passed", flush=True)
    print(f"\n{args.runs} runs in {time.monotonic() - started:.0f}s")
    for name, counter in sorted(counts.items()):
        print(f"{name}: {counter['passed']} passed, {counter['failed']} "
              f"failed" + (f", {counter['skipped']} skipped"
                           if counter["skipped"] else ""))
    # under the wrapper too: with a shared lab lock, nobody else's lab
    # is up while this looks
    subprocess.run([*wrap, sys.executable, __file__, "--leftovers"],
                   check=False)


if __name__ == "__main__":
    main()
