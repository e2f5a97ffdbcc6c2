"""The report links the run's log files: a game day's NAME.log and
NAME.debug.log, a `chaos run`'s chaostoolkit.log; every link resolves
from where the report is written."""

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

from chaosk3s.gameday.plan import load_plan
from chaosk3s.gameday.runner import run_plan
from chaosk3s.report.samples import lab_journal
from tests.unit.test_gameday_runner import (  # noqa: F401 - fixture
    OK_EXPERIMENT,
    private_state,
    write_plan,
)

CHAOSK3S = str(Path(sys.executable).parent / "chaosk3s")


def links(page: Path) -> dict[str, Path]:
    """{name shown: file the link resolves to} of the Logs fact."""
    html = page.read_text()
    match = re.search(r'<dd id="logs">(.*?)</dd>', html, re.S)
    if match is None:
        return {}
    return {name: (page.parent / unquote(target)).resolve()
            for target, name in re.findall(r'<a href="([^"]+)">([^<]+)</a>',
                                           match.group(1))}


def test_a_game_days_report_links_its_logs(tmp_path):
    result = run_plan(load_plan(write_plan(tmp_path, [(OK_EXPERIMENT, {})])),
                      progress=lambda m: None)
    [item] = result.experiments
    found = links(Path(item.report))
    assert set(found) == {"01-exp0.log", "01-exp0.debug.log"}
    for name, path in found.items():
        assert path == result.run_dir / name and path.is_file()


def test_links_resolve_from_another_output_dir(tmp_path):
    runs = tmp_path / "javascript:alert(1)"  # a hostile directory name
    runs.mkdir()
    (runs / "journal.json").write_text(json.dumps(lab_journal()))
    (runs / "chaostoolkit.log").write_text("log\n")
    out = tmp_path / "out"
    subprocess.run([CHAOSK3S, "report", str(runs / "journal.json"), "-o",
                    str(out)], check=True, capture_output=True, timeout=120)
    page = out / "journal.html"
    assert links(page) == {"chaostoolkit.log": runs / "chaostoolkit.log"}
    assert 'href="./../javascript%3Aalert%281%29/chaostoolkit.log"' in \
        page.read_text()


def test_no_log_no_logs_fact(tmp_path):
    (tmp_path / "journal.json").write_text(json.dumps(lab_journal()))
    subprocess.run([CHAOSK3S, "report", str(tmp_path / "journal.json")],
                   check=True, capture_output=True, timeout=120)
    page = tmp_path / "journal.html"
    assert links(page) == {} and '<dd id="logs">' not in page.read_text()
