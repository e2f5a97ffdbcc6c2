"""Run directories of a plan: naming and retention.

A run directory is named by its UTC start, 20250107T100000Z (a suffix -2,
-3 ... if that second is taken), so names sort by time. Retention only
ever removes directories named like that: nothing else a person put in
reports/<plan>/ is touched.
"""

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chaosk3s.gameday.plan import Retention

RUN_DIR_RE = re.compile(r"^(\d{8}T\d{6}Z)(-\d+)?$")
STAMP = "%Y%m%dT%H%M%SZ"
_MAX_SUFFIX = 1000


def new_run_dir(plan_dir: Path, started: datetime) -> Path:
    stamp = started.astimezone(UTC).strftime(STAMP)
    plan_dir.mkdir(parents=True, exist_ok=True)
    for suffix in range(1, _MAX_SUFFIX):
        path = plan_dir / (stamp if suffix == 1 else f"{stamp}-{suffix}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"{plan_dir}: too many runs started at {stamp}")


def run_dirs(plan_dir: Path) -> list[Path]:
    """The plan's run directories, oldest first."""
    if not plan_dir.is_dir():
        return []
    found = [p for p in plan_dir.iterdir()
             if p.is_dir() and RUN_DIR_RE.match(p.name)]

    def order(path: Path) -> tuple[str, int]:
        match = RUN_DIR_RE.match(path.name)
        return match.group(1), int((match.group(2) or "-1")[1:])
    return sorted(found, key=order)


def _started(path: Path) -> datetime:
    stamp = RUN_DIR_RE.match(path.name).group(1)
    return datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)


def expired(plan_dir: Path, retention: Retention, current: Path | None,
            now: datetime) -> list[Path]:
    """Runs beyond keep_runs (newest first kept) or older than keep_days;
    the current run is always kept."""
    runs = run_dirs(plan_dir)
    doomed = set()
    if retention.keep_runs is not None:
        doomed.update(runs[:max(0, len(runs) - retention.keep_runs)])
    if retention.keep_days is not None:
        limit = now - timedelta(days=retention.keep_days)
        doomed.update(p for p in runs if _started(p) < limit)
    doomed.discard(current)
    return [p for p in runs if p in doomed]


def apply_retention(plan_dir: Path, retention: Retention,
                    current: Path | None, now: datetime) -> list[Path]:
    removed = expired(plan_dir, retention, current, now)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
