"""Report rendering: journal loading, verdicts, redaction, node timings,
the HTML page and the `report` command, on real and hand-made journals."""

import copy
import html
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from chaosk3s.redact import REDACTED
from chaosk3s.report import (
    JournalError,
    load_journal,
    render_journal,
    update_index,
)
from chaosk3s.report.cli import chaos_report_command, report_command
from chaosk3s.report.render import render_report
from chaosk3s.report.samples import lab_journal

CHAOS = Path(sys.executable).parent / "chaos"
TINY_EXPERIMENT = {
    "title": "Tiny stdlib experiment",
    "description": "a real chaos run with stdlib providers",
    "configuration": {"target": "lab", "api_token": "tok-123",
                      "nested": {"db_password": "hunter2", "replicas": 3}},
    "secrets": {"k8s": {"KUBERNETES_HOST": "http://127.0.0.1:1"}},
    "steady-state-hypothesis": {"title": "tmp exists", "probes": [
        {"type": "probe", "name": "tmp-exists", "tolerance": True,
         "provider": {"type": "python", "module": "os.path",
                      "func": "exists", "arguments": {"path": "/tmp"}}}]},
    "method": [
        {"type": "action", "name": "list-missing", "provider": {
            "type": "python", "module": "os", "func": "listdir",
            "arguments": {"path": "/nonexistent-ck3s"}}},
        {"type": "probe", "name": "cwd", "provider": {
            "type": "python", "module": "os", "func": "getcwd"}}],
    "rollbacks": [{"type": "action", "name": "check-tmp", "provider": {
        "type": "python", "module": "os.path", "func": "isdir",
        "arguments": {"s": "/tmp"}}}],
    "runtime": {"rollbacks": {"strategy": "always"}}}

OLD_JOURNAL = {  # chaostoolkit 1.0-era: naive times, no deviated/during
    "chaoslib-version": "1.0.0", "platform": "Linux", "node": "old",
    "experiment": {"title": "old run", "description": "",
                   "method": [], "rollbacks": []},
    "start": "2019-01-10T10:00:00.123456", "status": "completed",
    "steady_states": {"before": None, "after": None},
    "run": [{"activity": {"type": "action", "name": "restart", "provider":
                          {"type": "process", "path": "true"}},
             "output": {"status": 0, "stdout": "", "stderr": ""},
             "status": "succeeded", "start": "2019-01-10T10:00:01.000000",
             "end": "2019-01-10T10:00:01.500000", "duration": 0.5}],
    "rollbacks": [], "end": "2019-01-10T10:00:02.000000", "duration": 2.0}


@pytest.fixture(scope="module")
def real_journal(tmp_path_factory) -> Path:
    """A journal written by a real `chaos run` (chaostoolkit 1.19)."""
    work = tmp_path_factory.mktemp("chaosrun")
    (work / "experiment.json").write_text(json.dumps(TINY_EXPERIMENT))
    done = subprocess.run(
        [str(CHAOS), "--no-log-file", "--no-version-check", "run",
         "--journal-path", "journal.json", "experiment.json"],
        cwd=work, capture_output=True, text=True, timeout=120, check=False)
    journal = work / "journal.json"
    assert journal.exists(), done.stderr
    return journal


def write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_real_chaos_journal_loads_with_every_phase(real_journal):
    journal = load_journal(real_journal)
    assert journal.status == "completed" and not journal.partial
    assert [a.name for a in journal.method] == ["list-missing", "cwd"]
    assert journal.method[0].failed
    assert "FileNotFoundError" in journal.method[0].error
    assert journal.method[1].output == str(real_journal.parent)
    assert [a.name for a in journal.rollbacks] == ["check-tmp"]
    assert journal.before.met and journal.after.met
    assert journal.before.probes[0].tolerance == "== true"
    assert journal.rollback_strategy == "always"
    assert journal.k3s is None
    assert journal.verdict.kind == "completed"
    assert any("1 of 2 method activities failed" in note
               for note in journal.verdict.notes)


def test_real_journal_report_redacts_and_shows_everything(real_journal,
                                                          tmp_path):
    page = html.unescape(render_journal(real_journal, tmp_path).read_text())
    assert "tok-123" not in page and "hunter2" not in page
    assert "http://127.0.0.1:1" not in page  # every secrets value hidden
    assert page.count(REDACTED) == 3
    assert '"replicas": 3' in page
    for name in ("tmp-exists", "list-missing", "cwd", "check-tmp"):
        assert name in page
    assert "<details" in page and "FileNotFoundError" in page
    assert re.search(r'class="verdict v-completed"', page)
    assert "<svg" in page


def test_partial_journal_is_interrupted_and_renders(tmp_path):
    raw = lab_journal(agents=2)
    for key in ("end", "duration", "status", "rollbacks"):
        del raw[key]
    raw["steady_states"]["after"] = None
    raw["run"][-1].pop("end")
    raw["chaosk3s"]["faults"][0]["ended_at"] = None
    journal = load_journal(write(tmp_path, "journal.json", raw))
    assert journal.partial and journal.verdict.kind == "interrupted"
    assert any("never saw it healed" in n for n in journal.verdict.notes)
    page = render_report(journal)
    assert "v-interrupted" in page and "partial" in page


def test_old_chaostoolkit_journal_renders(tmp_path):
    journal = load_journal(write(tmp_path, "old.json", OLD_JOURNAL))
    assert journal.start == datetime(2019, 1, 10, 10, 0, 0, 123456, UTC)
    assert journal.before is None and journal.during == []
    assert journal.method[0].provider == "process true"
    assert journal.verdict.kind == "completed"
    assert "Not run." in render_report(journal)


@pytest.mark.parametrize("content, message", [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "not an object"),
    (json.dumps({"title": "x", "method": []}), "experiment, not a journal"),
    (json.dumps({"hello": "world"}), "not a Chaos Toolkit journal"),
    (b"\xff\xfe\x00garbage", "invalid JSON"),
])
def test_bad_files_raise_an_error_naming_the_file(tmp_path, content,
                                                  message):
    path = tmp_path / "bad.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(JournalError) as caught:
        load_journal(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_verdicts_deviated_failed_and_aborted(tmp_path):
    bug = load_journal(write(tmp_path, "a.json", lab_journal(buggy=True)))
    assert bug.verdict.kind == "deviated"
    assert "all-nodes-ready" in bug.verdict.reason
    assert any("agent-0" in n and "at risk" in n for n in bug.verdict.notes)
    gate = lab_journal()
    gate["steady_states"]["before"]["steady_state_met"] = False
    gate["steady_states"]["before"]["probes"][0]["tolerance_met"] = False
    gate["run"], gate["steady_states"]["after"] = [], None
    failed = load_journal(write(tmp_path, "b.json", gate))
    assert failed.verdict.kind == "failed"
    assert "did not run" in failed.verdict.reason
    aborted = dict(lab_journal(), status="aborted")
    assert load_journal(write(tmp_path, "c.json", aborted)
                        ).verdict.kind == "interrupted"


def test_node_timings_per_node_and_role(tmp_path):
    journal = load_journal(write(tmp_path, "j.json",
                                 lab_journal(agents=3, buggy=True)))
    nodes = {n.name: n for n in journal.k3s.nodes}
    assert [n.role for n in journal.k3s.nodes][:2] == ["etcd",
                                                      "control-plane"]
    [outage] = nodes["agent-1"].outages  # agents 0 and 2 stay down (buggy)
    assert outage.to_not_ready == pytest.approx(12.3)  # cut at 8, +20.3
    assert outage.to_ready_after_heal == pytest.approx(3.5 + 0.4)
    assert outage.seconds == pytest.approx(21.6)  # +20.3 to +41.9
    assert outage.fault == "p-1a2b"
    assert [s.state for s in nodes["agent-1"].segments] == [
        "Ready", "Unknown", "NotReady", "Ready"]
    assert nodes["agent-0"].recovered is False
    assert nodes["agent-0"].outages[0].ready_at is None
    assert nodes["server-cp-0"].outages == []
    agents = next(r for r in journal.k3s.roles if r.role == "agent")
    assert (agents.nodes, agents.went_not_ready, agents.not_recovered) == (
        3, 3, 2)
    assert agents.to_not_ready == pytest.approx(12.3)  # of 12.0/12.3/12.6
    assert agents.longest_outage == pytest.approx(21.6)
    assert agents.to_ready_after_heal == pytest.approx(3.9)


def test_nodes_are_ordered_by_role_then_number(tmp_path):
    journal = load_journal(write(tmp_path, "j.json", lab_journal(agents=11)))
    names = [n.name for n in journal.k3s.nodes]
    assert names[:4] == ["server-etcd-0", "server-cp-0", "agent-0",
                         "agent-1"]
    assert names[-2:] == ["agent-9", "agent-10"]


def test_node_known_only_from_timeline_is_drawn(tmp_path):
    raw = lab_journal(agents=1)
    raw["chaosk3s"]["nodes"] = {}
    journal = load_journal(write(tmp_path, "j.json", raw))
    agent = next(n for n in journal.k3s.nodes if n.name == "agent-0")
    assert agent.not_ready_at is not None and agent.recovered is True
    assert agent.outages[0].seconds == pytest.approx(21.5)  # +20 to +41.5
    assert agent.role == "unknown"


def test_redaction_of_keys_values_and_references(tmp_path):
    raw = lab_journal()
    raw["experiment"]["configuration"] = {
        "monkey": "visible", "ssh_key": "/root/.ssh/id", "apiKey": "k1",
        "kubeconfig_token": {"type": "env", "key": "TOKEN_VAR",
                             "default": "dflt"},
        "version": {"type": "env", "key": "K3S_VERSION",
                    "default": "v1.28.15+k3s1"},
        "header": "Bearer abc.def", "Credentials": {"user": "u"}}
    config = load_journal(write(tmp_path, "j.json", raw)).configuration
    assert config["monkey"] == "visible"
    assert config["ssh_key"] == config["apiKey"] == REDACTED
    assert config["kubeconfig_token"] == {
        "type": "env", "key": "TOKEN_VAR", "default": REDACTED}
    assert config["version"]["default"] == "v1.28.15+k3s1"
    assert config["header"] == f"Bearer {REDACTED}"  # the token only
    assert config["Credentials"] == {"user": REDACTED}


def test_secrets_hide_in_tracebacks_tooltips_and_attributes(tmp_path):
    """A journal no chaosk3s control redacted (plain chaos, a hand edit):
    the report hides its secrets wherever they would show, SVG <title>
    tooltips and the index's title attributes included."""
    raw = lab_journal(agents=1)
    raw["experiment"]["secrets"] = {"api": {"token": "scope-value-77"}}
    run = raw["run"][0]
    run["status"] = "failed"
    run["activity"]["name"] = "call https://u:pw-in-url-55@h/x"
    run["exception"] = ["Traceback (most recent call last):\n",
                        "requests.HTTPError: 401 for ?access_token=qt-66 "
                        "with Authorization: Bearer bt-88 and "
                        "scope-value-77\n"]
    raw["chaosk3s"]["faults"][0]["description"] = "cut with scope-value-77"
    (tmp_path / "reports").mkdir()
    journal = write(tmp_path / "reports", "j.json", raw)
    page = render_journal(journal, tmp_path).read_text()
    index = update_index(tmp_path / "reports").read_text()
    assert "<title>" in page and "title=" in index
    for secret in ("pw-in-url-55", "qt-66", "bt-88", "scope-value-77"):
        assert secret not in page and secret not in index, secret
    assert "401 for ?access_token=" in page  # the rest of the error stays


def test_report_command_renders_good_files_despite_bad_ones(tmp_path,
                                                            real_journal):
    bad = write(tmp_path, "corrupt.json", '{"run": [')
    out = tmp_path / "out"
    result = CliRunner().invoke(report_command, [
        str(real_journal), str(bad), "-o", str(out)])
    assert result.exit_code == 1
    assert (out / "journal.html").exists()
    # output: stdout and stderr in every click the package admits (8.1
    # mixes them by default, 8.2 removed the choice)
    assert f"{bad}: not a journal" in result.output
    assert str(out / "journal.html") in result.stdout


def test_same_named_journals_get_distinct_reports(tmp_path):
    paths = []
    for run in ("20261101T0900", "20261102T0900"):
        (tmp_path / "plan" / run).mkdir(parents=True)
        paths.append(write(tmp_path / "plan" / run, "journal.json",
                           lab_journal()))
    result = CliRunner().invoke(chaos_report_command, [
        *map(str, paths), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "plan_20261101T0900_journal.html", "plan_20261102T0900_journal.html"]
    assert chaos_report_command.name == "k3s-report"


def test_huge_output_is_cut_in_the_page(tmp_path):
    raw = copy.deepcopy(OLD_JOURNAL)
    raw["run"][0]["output"] = "x" * 50_000
    page = render_report(load_journal(write(tmp_path, "j.json", raw)))
    assert "more characters" in page and "x" * 50_000 not in page
