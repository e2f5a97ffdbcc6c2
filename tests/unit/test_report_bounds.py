"""Hostile journals render in bounded time and memory: each goes through
the real `chaosk3s report` command in a child process limited to
MEMORY_LIMIT of address space and TIME_LIMIT seconds of CPU, and the page
stays small and says what it cut."""

import html
import json
import resource
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chaosk3s.report.bounds import MAX_FIELD_CHARS, MAX_JOURNAL_BYTES
from chaosk3s.report.samples import lab_journal

CHAOSK3S = Path(sys.executable).parent / "chaosk3s"
MEMORY_LIMIT = 768 * 2**20  # bytes of address space for the child
TIME_LIMIT = 30  # CPU seconds
MAX_PAGE = 3 * 2**20  # bytes
START = datetime(2026, 11, 25, 21, 39, 50, tzinfo=UTC)
TOKEN = "tok3n-5tr4ddl1ng-the-cut"


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (TIME_LIMIT, TIME_LIMIT))


def report(tmp_path: Path, raw: dict | str
           ) -> tuple[subprocess.CompletedProcess, str]:
    """Render raw (a journal, or JSON text) with limits; the page text."""
    journal = tmp_path / "journal.json"
    journal.write_text(raw if isinstance(raw, str) else json.dumps(raw))
    done = subprocess.run(
        [str(CHAOSK3S), "report", str(journal), "-o", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=TIME_LIMIT * 3, check=False,
        preexec_fn=_limits)
    page = tmp_path / "out" / "journal.html"
    text = page.read_text() if page.exists() else ""
    if text:
        assert page.stat().st_size < MAX_PAGE
    return done, html.unescape(text)


def test_times_spanning_years_are_clipped(tmp_path):
    raw = lab_journal(agents=2)
    raw["chaosk3s"]["faults"][0]["ended_at"] = "2095-01-01T00:00:00+00:00"
    raw["chaosk3s"]["timeline"].insert(0, {
        "node": "agent-0", "at": "1971-01-01T00:00:00+00:00",
        "ready": "True"})
    done, page = report(tmp_path, raw)
    assert done.returncode == 0, done.stderr
    assert 'id="cut"' in page and "the charts show the first" in page
    assert page.count('class="tick"') < 40  # at most 13 per chart


def test_a_hundred_thousand_timeline_events(tmp_path):
    raw = lab_journal(agents=3)
    raw["chaosk3s"]["timeline"] = [
        {"node": f"agent-{i % 3}", "ready": "True" if i % 2 else "False",
         "at": (START + timedelta(milliseconds=5 * i)).isoformat()}
        for i in range(100_000)]
    for node in raw["chaosk3s"]["nodes"].values():
        node.pop("outages", None)  # outages come from the timeline
    done, page = report(tmp_path, raw)
    assert done.returncode == 0, done.stderr
    # every readiness change is in the journal, one bar per pixel drawn
    assert page.count('class="seg"') < 3 * 1000
    assert "start within one pixel of the time axis" in page
    assert "more outages not shown" in page


def test_ten_megabyte_strings_are_cut_and_no_secret_is_half_shown(
        tmp_path):
    head = MAX_FIELD_CHARS - 4_000  # where a cut string's head ends
    big = "x" * (head - 10) + f"Bearer {TOKEN} " + "y" * 10_000_000
    raw = lab_journal(agents=2)
    raw["experiment"]["title"] = big
    raw["run"][0]["output"] = big
    raw["run"][0]["status"] = "failed"
    raw["run"][0]["exception"] = [big, f"ValueError: {big}"]
    raw["chaosk3s"]["faults"][0]["description"] = big
    raw["chaosk3s"]["variables"] = {"note": big}
    done, page = report(tmp_path, raw)
    assert done.returncode == 0, done.stderr
    assert "characters cut" in page and 'id="cut"' in page
    for piece in (TOKEN, TOKEN[:8], TOKEN[-8:]):
        assert piece not in page


def test_deep_nesting_is_cut_or_refused_clearly(tmp_path):
    raw = lab_journal(agents=2)
    raw["run"][0]["output"] = "@@"
    text = json.dumps(raw)
    done, page = report(tmp_path, text.replace(
        '"@@"', '{"a": [' * 400 + "1" + "]}" * 400))
    assert done.returncode == 0, done.stderr
    assert "nested deeper than" in page
    done, _ = report(tmp_path, text.replace(
        '"@@"', "[" * 200_000 + "]" * 200_000))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "nested too deeply" in done.stderr


def test_huge_lists_of_activities_faults_and_nodes(tmp_path):
    raw = lab_journal(agents=2, activities=20_000)
    raw["chaosk3s"]["faults"] = [
        {"id": f"f{i}", "kind": "partition", "nodes": ["agent-0"],
         "description": "cut", "started_at": (
             START + timedelta(milliseconds=i)).isoformat()}
        for i in range(20_000)]
    raw["chaosk3s"]["nodes"].update(
        {f"extra-{i}": {"role": f"role-{i % 50}"} for i in range(5_000)})
    done, page = report(tmp_path, raw)
    assert done.returncode == 0, done.stderr
    for more in ("more activities not shown", "more faults not shown",
                 "more nodes not shown", "more nodes not drawn",
                 "⚡ 19981 more faults"):  # 19 fault rows, then the rest
        assert more in page, more


def test_a_journal_over_the_size_limit_is_refused(tmp_path):
    journal = tmp_path / "huge.json"
    with journal.open("wb") as handle:
        handle.truncate(MAX_JOURNAL_BYTES + 1)  # sparse: costs no disk
    done = subprocess.run(
        [str(CHAOSK3S), "report", str(journal), "-o", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
        preexec_fn=_limits)
    assert done.returncode == 1
    assert "too large to report" in done.stderr


@pytest.mark.parametrize("value", [float("nan"), 1e308, -1, "x"])
def test_odd_times_never_break_the_axis(tmp_path, value):
    raw = lab_journal(agents=1)
    raw["duration"] = value
    raw["end"] = "9999-12-31T23:59:59.999999+00:00"
    done, page = report(tmp_path, json.dumps(raw))
    assert done.returncode == 0, done.stderr
