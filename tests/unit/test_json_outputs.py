"""`--json` where no lab is needed: `gameday run --json` over real `chaos
run` subprocesses, and the errors of `faults`/`cleanup` without a target.
(The lab's `lab status --json`, `faults` and `cleanup --json` are tested
in tests/lab/test_extension.py.)"""

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.unit.test_gameday_runner import (
    DEVIATING,
    OK_EXPERIMENT,
    plan_outside_today,
    write_plan,
)


@pytest.fixture(autouse=True)
def private_state(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSK3S_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CHAOSK3S_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setenv("CHAOSK3S_LEDGER_DIR", str(tmp_path / "ledger"))


def test_gameday_run_json_is_the_result(tmp_path):
    plan = write_plan(tmp_path, [(DEVIATING, {"marker": str(tmp_path / "m")}),
                                 (OK_EXPERIMENT, {})],
                      stop_on_deviation=False)
    done = run_cli("gameday", "run", "--json", str(plan))
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)  # stdout is the JSON and nothing else
    assert result["exit_code"] == 1
    assert result["plan"] == "tiny" and result["target"] == "lab"
    assert [e["status"] for e in result["experiments"]] == \
        ["deviated", "completed"]
    assert result["counts"] == {"deviated": 1, "completed": 1}
    run_dir = Path(result["run_dir"])
    assert run_dir.is_dir()
    for item in result["experiments"]:
        assert Path(item["journal"]).is_file()
        assert Path(item["report"]).parent == run_dir
    assert "[1/2] exp0.json: running" in done.stderr  # progress stays there


def test_gameday_run_json_when_skipped(tmp_path):
    plan = plan_outside_today(tmp_path)
    done = run_cli("gameday", "run", "--json", "--only-in-window", str(plan))
    assert done.returncode == 3, done.stderr
    result = json.loads(done.stdout)
    assert result["exit_code"] == 3
    assert result["experiments"] == [] and result["run_dir"] is None
    assert "outside the plan's allowed windows" in result["message"]


@pytest.mark.parametrize("argv", [["faults", "--json"],
                                  ["cleanup", "--json"],
                                  ["faults", "--cleanup", "--json"]])
def test_no_lab_is_a_clear_error_and_no_json(tmp_path, argv):
    done = run_cli(*argv)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "no lab is up" in done.stderr and "chaosk3s lab up" in \
        done.stderr
    assert "Traceback" not in done.stderr
