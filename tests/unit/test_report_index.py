"""reports/index.html: recursive discovery, history, links, trend chart."""

import html
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chaosk3s.report import update_index
from chaosk3s.report.index import href, report_for
from chaosk3s.report.samples import lab_journal

START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def add_run(reports: Path, plan: str, day: int, buggy: bool = False,
            title: str | None = None) -> Path:
    start = START + timedelta(days=day)
    raw = lab_journal(start, agents=2, buggy=buggy)
    if title:
        raw["experiment"]["title"] = title
    run = reports / plan / start.strftime("%Y%m%dT%H%M%S")
    run.mkdir(parents=True)
    path = run / "journal.json"
    path.write_text(json.dumps(raw))
    return path


def rows(page: str) -> list[str]:
    table = page.split('id="runs"', 1)[1]
    return re.findall(r"<tr><td class=\"num\">.*?</tr>", table, re.S)


def test_index_lists_every_run_newest_first_with_links(tmp_path):
    first = add_run(tmp_path, "nightly", 0)
    bug = add_run(tmp_path, "nightly", 1, buggy=True)
    other = add_run(tmp_path, "weekly", 2, title="Restart the etcd server")
    (tmp_path / "weekly" / "plan.json").write_text('{"experiments": []}')
    page = update_index(tmp_path).read_text()
    found = rows(page)
    assert len(found) == 3
    assert "Restart the etcd server" in found[0]
    assert "deviated" in found[1] and "2 not recovered" not in found[1]
    assert "1 not recovered" in found[1] and "v1.28.14+k3s1" in found[1]
    assert "completed" in found[2] and "21.6 s" in found[2]
    for journal in (first, bug, other):
        link = href(report_for(journal), tmp_path)
        assert f'href="{link}"' in page
        assert report_for(journal).exists()  # rendered on the way
    assert "plan.json" not in page  # not a journal: skipped quietly


def test_trend_chart_has_one_series_per_experiment(tmp_path):
    for day in range(4):
        add_run(tmp_path, "a", day, buggy=day == 2)
        add_run(tmp_path, "b", day, title="Second experiment")
    page = update_index(tmp_path).read_text()
    chart = page.split('id="trend"', 1)[1].split("</svg>", 1)[0]
    assert chart.count("<polyline") == 2
    assert chart.count("<circle") == 7  # 8 runs, one never recovered
    assert "never recovered" in chart
    assert "Second experiment" in chart


def test_corrupt_journal_is_listed_and_others_still_indexed(tmp_path):
    add_run(tmp_path, "nightly", 0)
    broken = tmp_path / "nightly" / "killed" / "journal.json"
    broken.parent.mkdir()
    broken.write_text('{"experiment": {"title": "x"}, "run": [')
    page = html.unescape(update_index(tmp_path).read_text())
    assert len(rows(page)) == 1
    assert "Unreadable journals" in page
    assert os.path.join("nightly", "killed", "journal.json") in page


def test_stale_report_is_rendered_again(tmp_path):
    journal = add_run(tmp_path, "nightly", 0)
    update_index(tmp_path)
    report = report_for(journal)
    report.write_text("stale")
    os.utime(report, (1, 1))  # older than the journal
    update_index(tmp_path)
    assert "Agents survive" in report.read_text()


def test_links_are_relative_paths_even_for_hostile_names(tmp_path):
    hostile = tmp_path / "javascript:alert(1)" / "x y"
    link = href(hostile / "journal.html", tmp_path)
    assert link == "./javascript%3Aalert%281%29/x%20y/journal.html"


def test_index_of_an_empty_directory(tmp_path):
    page = update_index(tmp_path).read_text()
    assert "No journals found." in page and "0 runs" in page


def test_a_run_judged_on_the_watchs_view_says_so(tmp_path):
    """recovered judged on the readiness watch's view (the API did not
    answer the fresh read) is marked in the index; a fresh read is not."""
    fresh = add_run(tmp_path, "nightly", 0)
    watched = add_run(tmp_path, "nightly", 1)
    raw = json.loads(watched.read_text())
    raw["chaosk3s"].update(final_source="watch",
                           final_error="no fresh read within 5s: timed out")
    watched.write_text(json.dumps(raw))
    assert json.loads(fresh.read_text())["chaosk3s"]["final_source"] == "api"
    found = rows(html.unescape(update_index(tmp_path).read_text()))
    assert "watch's view" in found[0] and "not a fresh API read" in found[0]
    assert "watch's view" not in found[1]
