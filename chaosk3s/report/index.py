"""reports/index.html: every run found under a reports directory.

Game days write runs to reports/<plan>/<timestamp>/journal.json, so the
scan is recursive. Each journal's report sits beside it (journal.html);
a missing or stale report is rendered on the way, so every link works.
"""

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from chaosk3s.files import write_atomically
from chaosk3s.report.journal import Journal, JournalError, load_journal
from chaosk3s.report.nodes import RoleSummary
from chaosk3s.report.render import environment, href, render_report, when
from chaosk3s.report.trend import Point, trend_svg

INDEX_NAME = "index.html"


@dataclass
class RunSummary:
    href: str
    start: datetime | None
    title: str
    target: str
    versions: list[str]
    verdict: str
    reason: str
    longest_outage: float | None  # NotReady to Ready, the longest
    slowest_after_heal: float | None  # a heal to Ready, the longest
    not_recovered: list[str]
    roles: list[RoleSummary]
    # "watch": recovered judged on the readiness watch's view (the API
    # did not answer the fresh read at the check after the method)
    final_source: str = ""


@dataclass
class Unreadable:
    path: str
    error: str


def report_for(journal_path: Path) -> Path:
    """Where a journal's report lives: beside it, NAME.html."""
    return journal_path.with_suffix(".html")


def find_journals(reports_dir: Path) -> list[Path]:
    """Every *.json under reports_dir, skipping hidden files and dirs."""
    found = []
    for root, dirs, files in os.walk(reports_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / name for name in sorted(files)
                  if name.endswith(".json") and not name.startswith(".")]
    return found


def _fresh_report(journal: Journal) -> Path:
    report = report_for(journal.path)
    try:
        if report.stat().st_mtime >= journal.path.stat().st_mtime:
            return report
    except OSError:
        pass
    write_atomically(report, render_report(journal))
    return report


def summarise(journal: Journal, report: Path, base: Path) -> RunSummary:
    k3s = journal.k3s
    return RunSummary(
        href=href(report, base), start=journal.start or journal.span[0],
        title=journal.title, target=k3s.target if k3s else "",
        versions=k3s.versions if k3s else [],
        verdict=journal.verdict.kind, reason=journal.verdict.reason,
        longest_outage=k3s.longest_outage if k3s else None,
        slowest_after_heal=k3s.slowest_after_heal if k3s else None,
        not_recovered=[n.name for n in k3s.not_recovered] if k3s else [],
        roles=k3s.roles if k3s else [],
        final_source=k3s.final_source if k3s else "")


def _point(run: RunSummary) -> Point | None:
    """A trend point when the run measured an outage or lost a node."""
    if run.start is None or (run.longest_outage is None
                             and not run.not_recovered):
        return None
    seconds = None if run.not_recovered else run.longest_outage
    return Point(run.title, run.start, seconds, run.verdict)


def collect(reports_dir: Path) -> tuple[list[RunSummary], list[Unreadable]]:
    runs, broken = [], []
    for path in find_journals(reports_dir):
        try:
            journal = load_journal(path)
        except JournalError as exc:
            if not exc.not_journal:
                broken.append(Unreadable(
                    os.path.relpath(path, reports_dir), str(exc)))
            continue
        runs.append(summarise(journal, _fresh_report(journal), reports_dir))
    oldest = datetime.min.replace(tzinfo=UTC)
    runs.sort(key=lambda r: r.start or oldest, reverse=True)
    return runs, broken


def update_index(reports_dir: Path) -> Path:
    """(Re)write reports_dir/index.html over every run found below it."""
    reports_dir = Path(reports_dir)
    runs, broken = collect(reports_dir)
    points = [p for p in map(_point, runs) if p]
    page = environment().get_template("index.html").render(
        runs=runs, broken=broken, trend=trend_svg(points),
        reports_dir=str(reports_dir), generated=when(datetime.now(UTC)))
    target = reports_dir / INDEX_NAME
    write_atomically(target, page)
    return target
