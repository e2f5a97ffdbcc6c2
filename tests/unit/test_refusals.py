"""What a run is refused for before anything runs, and how a refused or
failed run reads: real `chaos run` processes, real journals, no cluster
(a refused run never reaches one)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from markupsafe import escape

from chaosk3s.experiment_check import check_arguments, check_variables
from chaosk3s.gameday.runner import classify
from chaosk3s.outcome import fail_if_activities_failed, failed_activities
from chaosk3s.report import load_journal
from chaosk3s.report.render import render_report
from chaosk3s.report.samples import lab_journal

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
PARTITION = EXPERIMENTS / "etcd_only_partition.json"


def experiment(name: str = "etcd_only_partition.json") -> dict:
    return json.loads((EXPERIMENTS / name).read_text())


def configuration(raw: dict, **overrides) -> dict:
    from chaoslib.configuration import load_configuration
    return load_configuration(raw.get("configuration", {}), overrides)


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.json")),
                         ids=lambda p: p.name)
def test_shipped_experiments_pass_the_checks(path):
    raw = json.loads(path.read_text())
    assert check_arguments(raw, configuration(raw)) == []


def test_a_variable_typed_as_text_is_a_number_and_a_bad_one_is_named():
    raw = experiment()
    assert check_arguments(raw, configuration(
        raw, partition_seconds="24", fault_ttl="60")) == []
    problems = check_arguments(raw, configuration(raw,
                                                  partition_seconds="abc"))
    assert problems == [
        "method activity 'nodes-not-ready-during-partition': "
        "chaosk3s.probes.nodes_not_ready_within: argument seconds='abc' is "
        "invalid: expected a number, 0 or more (the value of variable "
        "partition_seconds)"]


def test_unknown_variables_are_refused_and_unused_file_keys_warned():
    raw = experiment()
    problems, warnings = check_variables(
        raw, {"partition_second": "60", "recovery_timeout": "40"},
        {"shared_key": 1, "fault_ttl": 60})
    assert len(problems) == 1
    assert problems[0].startswith(
        "--var partition_second: the experiment declares no configuration "
        "key 'partition_second' (did you mean partition_seconds?)")
    for key in raw["configuration"]:
        assert key in problems[0]
    assert warnings == [
        "--var-file sets shared_key, which the experiment does not declare "
        "(ignored); its keys: " + ", ".join(sorted(raw["configuration"]))]


def chaos_run(tmp_path: Path, *argv: str) -> tuple[subprocess.CompletedProcess,
                                                   dict]:
    chaos = Path(sys.executable).parent / "chaos"
    result = subprocess.run(
        [str(chaos), "run", *argv], cwd=tmp_path, capture_output=True,
        text=True, timeout=120, check=False,
        env={**os.environ, "CHAOSK3S_STATE_DIR": str(tmp_path / "state"),
             "CHAOSK3S_LEDGER_DIR": str(tmp_path / "ledger"),
             # were the refusal missed, no cluster could be reached
             "CHAOSK3S_TARGET": str(tmp_path / "no-inventory.yaml")})
    return result, json.loads((tmp_path / "journal.json").read_text())


def test_chaos_run_refuses_before_anything_starts(tmp_path):
    var_file = tmp_path / "shared.yaml"
    var_file.write_text("configuration: {other_experiments_key: 1}\n")
    result, journal = chaos_run(
        tmp_path, "--var", "partition_second=60", "--var",
        "partition_seconds=abc", "--var-file", str(var_file),
        str(PARTITION))
    assert result.returncode == 1
    assert journal["status"] == "interrupted"
    assert journal["run"] == [] and not journal.get("rollbacks")
    section = journal["chaosk3s"]
    lines = section["refused"].splitlines()
    assert len(lines) == 2, lines
    assert "--var partition_second:" in lines[0]
    assert "argument seconds='abc'" in lines[1]
    assert "other_experiments_key, which the experiment does not declare" \
        in result.stderr
    assert section["variables"]["partition_seconds"] == "abc"
    assert section["lab"] is None and section["faults"] == []
    assert not (tmp_path / "state").exists()  # no lab was started
    report = load_journal(tmp_path / "journal.json")
    assert report.verdict.kind == "refused"
    assert report.verdict.notes == lines
    page = render_report(report)
    assert 'class="verdict v-refused"' in page
    assert str(escape(lines[1])) in page
    outcome, _ = classify(tmp_path / "journal.json", 1)
    assert outcome.status == "refused"


def test_chaos_run_accepts_both_variable_forms(tmp_path):
    """k=v and k:int=v both pass the checks; the run then goes as far as
    the target, which here does not exist."""
    result, journal = chaos_run(
        tmp_path, "--var", "partition_seconds=24", "--var",
        "recovery_timeout:int=40", str(PARTITION))
    assert result.returncode == 1
    refused = journal["chaosk3s"]["refused"]
    assert refused.startswith("cannot read inventory"), refused
    assert journal["chaosk3s"]["variables"]["recovery_timeout"] == 40


def _failed_run(status: str, error: str = "chaosk3s.errors.CommandFailed: "
                "on node agent-0: `iptables-restore` exited 1: boom"
                ) -> dict:
    journal = lab_journal()
    journal["status"] = status
    journal["run"][0]["status"] = "failed"
    journal["run"][0]["exception"] = [
        "Traceback (most recent call last):\n",
        f"chaoslib.exceptions.ActivityFailed: {error}\n"]
    return journal


def _deviate(journal: dict) -> dict:
    journal["deviated"] = True
    journal["steady_states"]["after"]["steady_state_met"] = False
    return journal


def _judged(tmp_path: Path, journal: dict, failed: list[dict]):
    """The journal as the control leaves it (failed_activities in its
    section), written and read as the game day and the report read it."""
    journal["chaosk3s"]["failed_activities"] = failed
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(journal))
    return classify(path, 1)


def test_a_raised_chaosk3s_activity_fails_a_completed_run(tmp_path):
    journal = _failed_run("completed")
    failed = failed_activities(journal)
    name = journal["run"][0]["activity"]["name"]
    assert failed == [{"name": name, "phase": "method", "error":
                       "chaosk3s.errors.CommandFailed: on node agent-0: "
                       "`iptables-restore` exited 1: boom"}]
    assert fail_if_activities_failed(journal, failed)
    assert journal["status"] == "failed"
    interrupted = _failed_run("interrupted")
    assert not fail_if_activities_failed(interrupted, failed)
    outcome, report = _judged(tmp_path, journal, failed)
    assert (outcome.status, report.verdict.kind) == ("failed", "failed")
    assert report.verdict.reason.startswith(
        f"The run failed: method activity '{name}' raised "
        "chaosk3s.errors.CommandFailed: on node agent-0")


def test_a_deviated_run_stays_deviated_and_names_what_raised(tmp_path):
    """The deviation is the finding (K3s #11333: a restart whose server
    cannot start raises, and the steady state fails after it): the run
    keeps status completed and deviated, exit 1 from Chaos Toolkit, and
    the report names the activity that raised among its notes."""
    journal = _deviate(_failed_run("completed"))
    failed = failed_activities(journal)
    assert not fail_if_activities_failed(journal, failed)
    assert journal["status"] == "completed"
    outcome, report = _judged(tmp_path, journal, failed)
    assert (outcome.status, report.verdict.kind) == ("deviated", "deviated")
    name = failed[0]["name"]
    assert any(note.startswith(f"Method activity '{name}' raised")
               for note in report.verdict.notes), report.verdict.notes


REFUSED_UPGRADE = (
    "chaosk3s.errors.SpecError: upgrade_k3s refused, nothing changed: "
    "server-etcd-0: v1.31.7+k3s1 skips a minor release after v1.28.15+k3s1")


def test_a_refused_activity_fails_the_run_even_when_it_deviated(tmp_path):
    """An activity that refused what it was asked (a SpecError: nothing
    changed) means the method did not run as written: the deviation after
    it is no finding about the cluster (seen: upgrade_k3s refused a
    minor skip, the method went on to stop the control plane, and the run
    said "deviated"). The run fails, naming the refused activity."""
    journal = _deviate(_failed_run("completed", REFUSED_UPGRADE))
    failed = failed_activities(journal)
    assert fail_if_activities_failed(journal, failed)
    assert journal["status"] == "failed"
    outcome, report = _judged(tmp_path, journal, failed)
    assert (outcome.status, report.verdict.kind) == ("failed", "failed")
    assert report.verdict.reason.startswith(
        f"The run failed: method activity '{failed[0]['name']}' raised "
        f"{REFUSED_UPGRADE}")
    # an older journal (deviated, status left completed) reads the same
    journal["status"] = "completed"
    _judged(tmp_path, journal, failed)
    assert load_journal(tmp_path / "journal.json").verdict.kind == "failed"


@pytest.mark.parametrize(("error", "refusal"), [
    (REFUSED_UPGRADE, True),
    ("chaosk3s.errors.ArgumentError: argument seconds='x' is invalid", True),
    ("chaosk3s.errors.NotConsented: the cluster has not consented", True),
    ("chaosk3s.errors.EffectNotSeen: server-cp-0: K3s not running", False),
    ("chaosk3s.errors.KubeUnavailable: no API server answered", False),
    ("chaosk3s.errors.NoSuchError: whatever", False),
    ("ValueError: chaosk3s.errors.SpecError: quoted", False),
    ("(no exception recorded)", False),
])
def test_which_errors_are_refusals(error, refusal):
    from chaosk3s.errors import names_a_refusal
    assert names_a_refusal(error) is refusal


def test_plan_refuses_what_chaos_run_refuses(tmp_path):
    variables = ["--var", "partition_second=60", "--var",
                 "partition_seconds=abc", "--var", "fault_ttl:float=-1"]
    _result, journal = chaos_run(tmp_path, *variables, str(PARTITION))
    plan = subprocess.run(
        [sys.executable, "-m", "chaosk3s.cli", "plan", *variables,
         str(PARTITION)], capture_output=True, text=True, timeout=60,
        check=False, env={**os.environ, "CHAOSK3S_TARGET": "lab"})
    assert plan.returncode == 1
    said = plan.stderr.splitlines()
    assert said[0] == ("chaos run would refuse this run (nothing would be "
                       "injected):")
    assert [line.strip() for line in said[1:]] == \
        journal["chaosk3s"]["refused"].splitlines()
    assert len(said) == 4 and "argument ttl=-1.0" in said[2]
    typo = subprocess.run(
        [sys.executable, "-m", "chaosk3s.cli", "plan", "--var",
         "partition_seconds:int=abc", str(PARTITION)],
        capture_output=True, text=True, timeout=60, check=False)
    assert typo.returncode == 2  # Chaos Toolkit's own --var parser says
    assert "Invalid value for '--var'" in typo.stderr


def test_a_rollback_that_raised_is_named_whatever_the_reason(tmp_path):
    """The gate failed (the method never ran), then a rollback raised:
    the verdict gives the gate as the reason and names the rollback."""
    journal = _failed_run("failed")
    journal["rollbacks"] = [journal["run"].pop(0)]
    journal["run"] = []
    journal["steady_states"]["before"]["steady_state_met"] = False
    journal["steady_states"]["after"] = None
    failed = failed_activities(journal)
    assert [f["phase"] for f in failed] == ["rollback"]
    journal["chaosk3s"]["failed_activities"] = failed
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(journal))
    verdict = load_journal(path).verdict
    assert verdict.kind == "failed"
    assert verdict.reason.startswith("The steady state was not met before")
    assert verdict.notes[0].startswith(
        f"Rollback activity '{failed[0]['name']}' raised chaosk3s.errors.")
