"""`chaosk3s gameday run`: real `chaos run` subprocesses of tiny process
experiments (no cluster), real journals, reports, index, webhooks to a
real HTTP server on loopback, retention and exit codes."""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from chaosk3s.gameday.plan import load_plan
from chaosk3s.gameday.runner import classify, run_plan
from chaosk3s.report.samples import lab_journal

# A steady state that holds while `code` is 0; `nap` seconds of method.
OK_EXPERIMENT = {
    "version": "1.0.0", "title": "tiny", "description": "a process probe",
    "configuration": {
        "target": {"type": "env", "key": "CHAOSK3S_TARGET",
                   "default": "lab"},
        "code": 0, "nap": 0, "marker": ""},
    "steady-state-hypothesis": {"title": "exit code", "probes": [
        {"type": "probe", "name": "code", "tolerance": 0,
         "provider": {"type": "process", "path": "sh",
                      "arguments": "-c 'exit ${code}'"}}]},
    "method": [{"type": "action", "name": "nap", "provider": {
        "type": "process", "path": "sh",
        # no marker by default: nothing is ever written outside tmp_path
        "arguments": "-c '[ -z \"${marker}\" ] || touch \"${marker}\"; "
                     "sleep ${nap}'"}}]}
# Deviates: the method creates the file the hypothesis wants absent.
DEVIATING = {**OK_EXPERIMENT, "title": "tiny deviating",
             "steady-state-hypothesis": {"title": "no marker", "probes": [
                 {"type": "probe", "name": "absent", "tolerance": 1,
                  "provider": {"type": "process", "path": "test",
                               "arguments": "-e ${marker}"}}]}}


@pytest.fixture(autouse=True)
def private_state(tmp_path, monkeypatch):
    """No lab is up here (never the lead's) and locks are private."""
    monkeypatch.setenv("CHAOSK3S_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CHAOSK3S_LOCK_DIR", str(tmp_path / "locks"))


def plan_outside_today(directory: Path, **fields) -> Path:
    """A daily plan (so some runs fall inside its windows, else it is
    refused) whose windows leave out today's weekday."""
    from datetime import UTC, datetime
    today = datetime.now(UTC).weekday()
    days = [d for i, d in enumerate(("mon", "tue", "wed", "thu", "fri",
                                     "sat", "sun")) if i != today]
    return write_plan(directory, [(OK_EXPERIMENT, {})],
                      schedule={"cron": "0 10 * * *", "timezone": "UTC"},
                      windows=[{"days": days, "hours": "00:00-24:00"}],
                      **fields)


def write_plan(directory: Path, experiments: list[tuple[dict, dict]],
               **fields) -> Path:
    """Experiments as (content, vars) written beside a plan file."""
    entries = []
    for index, (content, variables) in enumerate(experiments):
        name = f"exp{index}.json"
        (directory / name).write_text(json.dumps(content))
        entries.append({"path": name, "vars": variables})
    raw = {"name": "tiny", "target": "lab", "experiments": entries,
           "schedule": {"cron": "0 10 * * 2", "timezone": "UTC"},
           "report_dir": "reports", **fields}
    path = directory / "plan.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


class Hooks:
    """A loopback HTTP server recording webhook POSTs."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                received.append((self.path, json.loads(
                    self.rfile.read(length))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chaosk3s.gameday.cli", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
        env=dict(os.environ))


def test_all_completed_writes_journals_reports_index(tmp_path):
    marker = tmp_path / "touched"
    plan = write_plan(tmp_path, [(OK_EXPERIMENT, {}),
                                 (OK_EXPERIMENT, {"marker": str(marker)})])
    done = run_cli("run", str(plan))
    assert done.returncode == 0, done.stderr
    assert "2 completed (exit 0)" in done.stdout
    assert "[1/2] exp0.json: running" in done.stderr
    runs = list((tmp_path / "reports" / "tiny").iterdir())
    assert len(runs) == 1
    names = sorted(p.name for p in runs[0].iterdir())
    assert names == ["01-exp0.debug.log", "01-exp0.html", "01-exp0.json",
                     "01-exp0.log", "02-exp1.debug.log", "02-exp1.html",
                     "02-exp1.json", "02-exp1.log", "gameday.json"]
    assert not (tmp_path / "chaostoolkit.log").exists()
    assert marker.exists()  # the vars reached the second run
    summary = json.loads((runs[0] / "gameday.json").read_text())
    assert [e["status"] for e in summary["experiments"]] == \
        ["completed", "completed"]
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "tiny/" in index and "01-exp0.html" in index


def test_deviation_stops_the_game_day_and_exits_1(tmp_path, hooks):
    marker = tmp_path / "m"
    plan = write_plan(
        tmp_path, [(DEVIATING, {"marker": str(marker)}),
                   (OK_EXPERIMENT, {})],
        webhooks={"start": hooks.url + "/start",
                  "deviation": hooks.url + "/deviation",
                  "finish": hooks.url + "/finish"})
    result = run_plan(load_plan(plan), progress=lambda m: None)
    assert result.exit_code == 1
    assert [e.status for e in result.experiments] == ["deviated", "skipped"]
    paths = [path for path, _ in hooks.received]
    assert paths == ["/start", "/deviation", "/finish"]
    finish = hooks.received[-1][1]
    assert finish["summary"]["exit_code"] == 1
    assert hooks.received[1][1]["experiment"]["experiment"] == "exp0.json"


def test_deviation_goes_on_without_stop_on_deviation(tmp_path):
    plan = write_plan(tmp_path, [(DEVIATING, {"marker": str(tmp_path / "m")}),
                                 (OK_EXPERIMENT, {})],
                      stop_on_deviation=False)
    result = run_plan(load_plan(plan), progress=lambda m: None)
    assert [e.status for e in result.experiments] == ["deviated",
                                                     "completed"]
    assert result.exit_code == 1


def test_an_error_exits_2_and_a_dead_webhook_is_not_fatal(tmp_path):
    seen = []
    plan = write_plan(tmp_path, [(OK_EXPERIMENT, {"code": 3}),
                                 (OK_EXPERIMENT, {})],
                      stop_on_deviation=False,
                      webhooks={"finish": "http://127.0.0.1:9/nobody"})
    result = run_plan(load_plan(plan), progress=seen.append)
    # A steady state that does not hold before the method: the run is
    # not a finding about the cluster but an error.
    assert result.experiments[0].status == "failed"
    assert "before the method" in result.experiments[0].detail
    assert result.experiments[1].status == "skipped"
    assert result.exit_code == 2
    assert any("webhook finish" in m and "failed" in m for m in seen)
    assert not [m for m in seen if "127.0.0.1:9" in m]  # never its URL


def test_retention_keeps_the_last_runs_only(tmp_path):
    plan_file = write_plan(tmp_path, [(OK_EXPERIMENT, {})],
                           retention={"keep_runs": 2})
    plan_dir = tmp_path / "reports" / "tiny"
    keep = plan_dir / "notes"  # not a run directory: never touched
    keep.mkdir(parents=True)
    (plan_dir / "20200101T000000Z").mkdir()
    (plan_dir / "20200102T000000Z").mkdir()
    result = run_plan(load_plan(plan_file), progress=lambda m: None)
    assert result.exit_code == 0
    left = sorted(p.name for p in plan_dir.iterdir())
    assert left == ["20200102T000000Z", result.run_dir.name, "notes"]


def test_only_in_window_skips_with_exit_3(tmp_path):
    plan = plan_outside_today(tmp_path)
    done = run_cli("run", "--only-in-window", str(plan))
    assert done.returncode == 3, done.stderr
    assert "outside the plan's allowed windows" in done.stderr
    assert not (tmp_path / "reports").exists()


def test_bad_plan_is_refused_before_anything_runs(tmp_path):
    marker = tmp_path / "never"
    plan = write_plan(tmp_path, [(OK_EXPERIMENT, {"marker": str(marker)}),
                                 (OK_EXPERIMENT, {"no_such_key": 1})])
    done = run_cli("run", str(plan))
    assert done.returncode == 2
    assert "experiments[1].vars.no_such_key" in done.stderr
    assert not marker.exists() and not (tmp_path / "reports").exists()


@pytest.mark.parametrize(("changes", "status", "verdict", "says"), [
    ({}, "completed", "completed", ""),
    ({"deviated": True}, "deviated", "deviated", "deviated after the method"),
    # A probe after the method raised: Chaos Toolkit writes both.
    ({"deviated": True, "status": "failed"}, "failed", "failed",
     "The run failed"),
    ({"status": "aborted"}, "aborted", "interrupted", "aborted by a control"),
    ({"end": None}, "interrupted", "interrupted", "journal is partial"),
])
def test_the_runner_judges_a_journal_as_its_report_does(
        tmp_path, changes, status, verdict, says):
    path = tmp_path / "journal.json"
    path.write_text(json.dumps({**lab_journal(buggy=bool(changes)),
                                **changes}))
    outcome, journal = classify(path, 0)
    assert (outcome.status, journal.verdict.kind) == (status, verdict)
    assert says in outcome.detail and (says or not outcome.detail)
    missing, none = classify(tmp_path / "absent.json", 2)
    assert (missing.status, none) == ("error", None)
