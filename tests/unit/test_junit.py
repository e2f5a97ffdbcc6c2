"""`chaosk3s report --junit`: real `chaos run` journals (no cluster: the
probes and actions are the standard library's), read back by junitparser
as a CI system reads them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

BIN = Path(sys.executable).parent


def probe(name: str, path: Path, exists: bool) -> dict:
    return {"type": "probe", "name": name, "tolerance": exists,
            "provider": {"type": "python", "module": "os.path",
                         "func": "exists", "arguments": {"path": str(path)}}}


def experiment(title: str, probes: list[dict], action: dict) -> dict:
    return {"version": "1.0.0", "title": title, "description": "junit",
            "steady-state-hypothesis": {"title": "files", "probes": probes},
            "method": [action], "rollbacks": []}


def action(func: str, path: Path) -> dict:
    return {"type": "action", "name": func,
            "provider": {"type": "python", "module": "os", "func": func,
                         "arguments": {"path": str(path)}}}


def chaos_run(tmp_path: Path, name: str, raw: dict) -> Path:
    (tmp_path / f"{name}.exp.json").write_text(json.dumps(raw))
    journal = tmp_path / "runs" / f"{name}.json"
    journal.parent.mkdir(exist_ok=True)
    subprocess.run([str(BIN / "chaos"), "--no-log-file", "run",
                    "--journal-path", str(journal), f"{name}.exp.json"],
                   cwd=tmp_path, capture_output=True, timeout=120,
                   check=False)
    return journal


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Three real runs: one holds, one deviates, one fails before its
    method."""
    tmp_path = tmp_path_factory.mktemp("chaos")
    marker, missing = tmp_path / "marker", tmp_path / "never"
    both = [probe("workdir-exists", tmp_path, True),
            probe("marker-absent", marker, False)]
    chaos_run(tmp_path, "completed", experiment(
        "holds", both, action("getcwd", tmp_path)
        | {"provider": {"type": "python", "module": "os",
                        "func": "getcwd"}}))
    chaos_run(tmp_path, "deviated", experiment(
        "deviates", both, action("mkdir", marker)))
    chaos_run(tmp_path, "failed", experiment(
        "never starts", [probe("never-exists", missing, True), *both],
        action("mkdir", missing)))
    return tmp_path / "runs"


def outcome(case) -> str:
    kinds = {Failure: "failure", Error: "error", Skipped: "skipped"}
    results = [kinds[type(r)] for r in case.result if type(r) in kinds]
    return results[0] if results else "pass"


def test_chaos_runs_read_back_with_the_right_counts(runs, tmp_path):
    target = tmp_path / "out" / "runs.xml"
    result = subprocess.run(
        [str(BIN / "chaosk3s"), "report", str(runs), "--junit", str(target)],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert str(target) in result.stdout
    assert oct(target.stat().st_mode & 0o777) == "0o600"

    xml = JUnitXml.fromfile(str(target))
    suites = {suite.name: suite for suite in xml}
    assert set(suites) == {"holds", "deviates", "never starts"}
    seen = {title: {case.name: outcome(case) for case in suite}
            for title, suite in suites.items()}
    assert seen["holds"] == {
        "run: holds": "pass", "before: workdir-exists": "pass",
        "before: marker-absent": "pass", "after: workdir-exists": "pass",
        "after: marker-absent": "pass"}
    assert seen["deviates"] == {
        "run: deviates": "failure", "before: workdir-exists": "pass",
        "before: marker-absent": "pass", "after: workdir-exists": "pass",
        "after: marker-absent": "failure"}
    failed = seen["never starts"]
    assert failed["run: never starts"] == "error"
    assert failed["before: never-exists"] == "failure"
    # chaoslib stops a hypothesis at its first broken probe, and the
    # after check never ran: none of those may count as a pass
    assert {name: kind for name, kind in failed.items()
            if name.startswith("after")} == {
        "after: never-exists": "skipped", "after: workdir-exists": "skipped",
        "after: marker-absent": "skipped"}
    assert failed["before: workdir-exists"] == "skipped"
    assert failed["before: marker-absent"] == "skipped"

    # the file's own totals are the ones a parser counts from the cases
    declared = (xml.tests, xml.failures, xml.errors, xml.skipped)
    xml.update_statistics()
    assert declared == (xml.tests, xml.failures, xml.errors, xml.skipped)
    cases = [kind for suite in seen.values() for kind in suite.values()]
    assert xml.tests == len(cases)
    assert xml.failures == cases.count("failure") == 3
    assert xml.errors == cases.count("error") == 1


def test_the_reasons_are_the_verdicts(runs, tmp_path):
    target = tmp_path / "runs.xml"
    subprocess.run([str(BIN / "chaosk3s"), "report", str(runs / "deviated"
                    ".json"), "--junit", str(target)], check=True,
                   capture_output=True, timeout=120)
    (suite,) = list(JUnitXml.fromfile(str(target)))
    cases = {case.name: case for case in suite}
    (run,) = cases["run: deviates"].result
    assert run.message.startswith("deviated: The steady state deviated "
                                  "after the method: probe 'marker-absent'")
    (probe_result,) = cases["after: marker-absent"].result
    assert probe_result.message == "returned true, tolerance == false not met"


def test_a_broken_file_is_named_and_the_rest_still_written(runs,
                                                            tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    target = tmp_path / "runs.xml"
    result = subprocess.run(
        [str(BIN / "chaosk3s"), "report", str(runs / "completed.json"),
         str(broken), "--junit", str(target)], capture_output=True,
        text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert f"{broken}: not a journal: invalid JSON" in result.stderr
    assert [s.name for s in JUnitXml.fromfile(str(target))] == ["holds"]


def test_a_refused_run_is_an_error_and_its_probes_never_ran(tmp_path):
    """A real `chaos run` of the shipped #11311 experiment, refused by
    the chaosk3s control (a bad variable): nothing of it passes."""
    from tests.unit.test_refusals import PARTITION
    from tests.unit.test_refusals import chaos_run as refused_run
    refused_run(tmp_path, "--var", "partition_seconds=abc", str(PARTITION))
    target = tmp_path / "junit.xml"
    subprocess.run([str(BIN / "chaosk3s"), "report", str(tmp_path /
                    "journal.json"), "--junit", str(target)], check=True,
                   capture_output=True, timeout=120)
    (suite,) = JUnitXml.fromfile(str(target))
    kinds = {case.name: outcome(case) for case in suite}
    run_case = next(name for name in kinds if name.startswith("run: "))
    assert kinds.pop(run_case) == "error"
    assert kinds and set(kinds.values()) == {"skipped"}
    assert {name.split(": ")[0] for name in kinds} == {"before", "after"}
    (error,) = next(c for c in suite if c.name == run_case).result
    assert error.message.startswith("refused: ")
    assert "partition_seconds" in error.text
