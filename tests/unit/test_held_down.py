"""A node the run itself still holds down at the steady-state check after
the method is not judged: not "not recovered", no outage that "never
ended", in the journal section, the report, the index and the matrix.

The journal is control_plane_outage.json's on v1.31.4+k3s1 as the lab
wrote it (2026-11-29, times to 0.1 s): server-cp-1 is stopped by the
method until the rollback starts it, after the check and 0.3 s before
the journal ends; the hypothesis leaves it out (`all,-control-plane[1]`).
The section is built by chaosk3s.journal_section, as the control builds
it, and the rest of the journal is the report's sample run's."""

import html
import json
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from chaosk3s import journal_section
from chaosk3s.lab.releases import parse_release
from chaosk3s.matrix import RunResult, read_outcome
from chaosk3s.matrix_output import longest_shown, not_recovered_shown
from chaosk3s.model import Node
from chaosk3s.report import load_journal, render_report, update_index
from chaosk3s.report.metrics import registry_for
from chaosk3s.report.samples import lab_journal
from chaosk3s.report.values import parse_time

RELEASE = "v1.31.4+k3s1"
ETCD = ("server-etcd-0", "server-etcd-1", "server-etcd-2")
NODES = {name: Node(name, role, f"10.213.11.{i + 10}",
                    None if name == "server-etcd-0" else "server-etcd-0")
         for i, (name, role) in enumerate(
             [(n, "etcd") for n in ETCD]
             + [("server-cp-0", "control-plane"),
                ("server-cp-1", "control-plane"),
                ("agent-0", "agent"), ("agent-1", "agent")])}
CHECKED_AT = 46.6  # the nodes read at the steady-state check after
STOP_1 = ("fc1", "server-cp-0", 5.0, 26.7)  # healed by the method
STOP_2 = ("fc2", "server-cp-1", 19.9, 51.3)  # healed by the rollback


def journal(second_healed_at: float = STOP_2[3],
            agent_0_at_check: str = "True") -> dict:
    raw = lab_journal(agents=1)
    start = parse_time(raw["start"])

    def at(seconds: float) -> str:
        return (start + timedelta(seconds=seconds)).isoformat()

    timeline = [{"node": n, "at": at(0.8), "ready": "True"} for n in NODES]
    timeline += [{"node": "server-cp-0", "at": at(16.7), "ready": "Unknown"},
                 {"node": "server-cp-0", "at": at(28.4), "ready": "True"},
                 {"node": "server-cp-1", "at": at(36.5), "ready": "Unknown"}]
    faults = [{"id": fid, "kind": "stop", "nodes": [node],
               "description": f"stop k3s on {node}", "started_at": at(
                   began), "ended_at": at(ended)}
              for fid, node, began, ended in (
                  STOP_1, (*STOP_2[:3], second_healed_at))]
    final = {n: "True" for n in NODES} | {"server-cp-1": "Unknown",
                                          "agent-0": agent_0_at_check}
    section = journal_section.section(
        "lab", "chaosk3s-lab", NODES, timeline, faults, final,
        [RELEASE] * len(NODES), parse_time(at(CHECKED_AT)))
    raw["chaosk3s"] = {**raw["chaosk3s"], **section, "lab": {
        "release": RELEASE, "family": "rework", "timings_profile": "lab",
        "timings": {}}}
    return raw


def written(tmp_path: Path, raw: dict, name: str = "journal") -> Path:
    path = tmp_path / name / "journal.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw))
    return path


def matrix_run(tmp_path: Path, raw: dict) -> RunResult:
    run = RunResult(Path("experiments/control_plane_outage.json"),
                    parse_release(RELEASE), "m1", tmp_path / "run")
    written(tmp_path, raw, "run")
    run.returncode = 0
    read_outcome(run)
    return run


def test_the_section_holds_the_stopped_server_not_judged():
    nodes = journal()["chaosk3s"]["nodes"]
    held = nodes["server-cp-1"]
    assert held["recovered"] is None and held["held_down"] == "fc2"
    assert held["outages"][0]["ready_at"] is None  # its Ready not seen
    assert {n for n, v in nodes.items() if v["recovered"] is not True} \
        == {"server-cp-1"}
    assert nodes["server-cp-0"]["held_down"] is None  # healed by then


def test_report_index_and_metrics_do_not_call_it_lost(tmp_path):
    path = written(tmp_path, journal())
    loaded = load_journal(path)
    k3s = loaded.k3s
    assert loaded.verdict.kind == "completed"
    assert (k3s.not_recovered, k3s.down_at_end) == ([], [])
    assert [n.name for n in k3s.held_down] == ["server-cp-1"]
    assert "not Ready again" not in loaded.verdict.reason
    assert "Every node that went NotReady was Ready again" \
        in loaded.verdict.reason
    assert any("server-cp-1 (fc2)" in note and "Held down" in note
               for note in loaded.verdict.notes)
    assert not any("Never Ready again" in n for n in loaded.verdict.notes)
    page = html.unescape(render_report(loaded))
    assert "7 · 2 went NotReady · 0 not recovered · 1 held down by the " \
        "run" in page
    assert "never Ready again" not in page and "held-down" in page
    index = html.unescape(update_index(tmp_path).read_text())
    assert "not recovered" not in index.split("<table", 1)[1]
    assert "11.7 s" in index  # server-cp-0's outage, the longest
    metrics = generate_latest(registry_for([loaded])).decode()
    assert 'chaosk3s_node_recovered{' in metrics
    assert 'node="server-cp-1"' in metrics  # its outages count
    assert not any(line.startswith("chaosk3s_node_recovered{")
                   and 'node="server-cp-1"' in line
                   for line in metrics.splitlines())


def test_the_matrix_row_says_what_its_labels_mean(tmp_path):
    run = matrix_run(tmp_path, journal())
    assert (run.verdict, run.not_recovered, run.held_down) == (
        "completed", [], ["server-cp-1"])
    assert not_recovered_shown(run) == \
        "none (held down by the run: server-cp-1)"
    assert longest_shown(run) == "11.7 s"


@pytest.mark.parametrize("second_healed_at,agent_0,lost", [
    # healed before the check and still not Ready: it did not recover
    (40.0, "True", ["server-cp-1"]),
    # no fault of the run names agent-0: not Ready is not recovered,
    # whatever else was held down then
    (STOP_2[3], "False", ["agent-0"]),
])
def test_a_node_no_fault_held_down_is_still_not_recovered(
        tmp_path, second_healed_at, agent_0, lost):
    raw = journal(second_healed_at, agent_0)
    nodes = raw["chaosk3s"]["nodes"]
    assert [n for n, v in nodes.items() if v["recovered"] is False] == lost
    run = matrix_run(tmp_path, raw)
    assert run.not_recovered == lost
    assert longest_shown(run) == "never ended (1 node)"
