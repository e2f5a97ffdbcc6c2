"""Benchmark: report rendering and the reports/ index.

Run:  .venv/bin/python benchmarks/report_render.py [--runs 5]
Targets (issue 6): a journal with 1,000 activities and 200 nodes renders in
<= 1 s (load + render + write); the index over 500 journals in <= 3 s.
The index is timed warm (reports already rendered, the usual case after a
game-day run) and cold (every one of the 500 reports rendered too).
"""

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chaosk3s.report import render_journal, update_index
from chaosk3s.report.index import find_journals, report_for
from chaosk3s.report.samples import lab_journal

BIG_ACTIVITIES, BIG_NODES, INDEX_RUNS = 1000, 200, 500


def timed(func, runs: int) -> float:
    """Median wall time of func() over runs."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def write_runs(root: Path, count: int) -> None:
    start = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    for index in range(count):
        at = start + timedelta(hours=7 * index)
        raw = lab_journal(at, agents=3 + index % 4, buggy=index % 9 == 0)
        raw["experiment"]["title"] = f"experiment {index % 5}"
        run = root / f"plan-{index % 5}" / at.strftime("%Y%m%dT%H%M%S")
        run.mkdir(parents=True)
        (run / "journal.json").write_text(json.dumps(raw))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        big = root / "big.json"
        big.write_text(json.dumps(lab_journal(
            agents=BIG_NODES - 2, activities=BIG_ACTIVITIES)))
        page = render_journal(big, root / "out")
        took = timed(lambda: render_journal(big, root / "out"), runs)
        print(f"render {BIG_ACTIVITIES} activities, {BIG_NODES} nodes: "
              f"{took:.3f} s median of {runs} (page {page.stat().st_size:,}"
              " bytes)")
        reports = root / "reports"
        write_runs(reports, INDEX_RUNS)
        started = time.perf_counter()
        update_index(reports)
        cold = time.perf_counter() - started
        warm = timed(lambda: update_index(reports), runs)
        assert all(report_for(j).exists() for j in find_journals(reports))
        print(f"index over {INDEX_RUNS} journals: warm {warm:.3f} s median "
              f"of {runs}; cold (renders all {INDEX_RUNS} reports too) "
              f"{cold:.3f} s")


if __name__ == "__main__":
    main()
