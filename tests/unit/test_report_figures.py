"""Every duration the report shows, under its own label: the outage
(NotReady to Ready), the time to NotReady after the fault and the time to
Ready after the heal; older journals mapped honestly; the variables and
the lab in the header. Journals come from chaosk3s.journal_section."""

import html
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from chaosk3s import journal_section
from chaosk3s.model import Node
from chaosk3s.redact import REDACTED
from chaosk3s.report import load_journal, render_report, update_index
from chaosk3s.report.samples import lab_journal
from chaosk3s.report.values import parse_time

NODES = {"server-etcd-0": Node("server-etcd-0", "etcd", "10.0.0.10", None),
         "server-cp-0": Node("server-cp-0", "control-plane", "10.0.0.11",
                             "server-etcd-0"),
         "agent-0": Node("agent-0", "agent", "10.0.0.12", "server-etcd-0")}


def demo_journal(agent_steps: list[tuple[float, str]],
                 cut: float = 8.0, heal: float | None = 24.4,
                 final: str = "True") -> dict:
    """The issue's demo run: agent-0 NotReady from +13.9 s to +25.4 s
    around a cut from +8 s to +24.4 s, through the section's own code."""
    raw = lab_journal(agents=1)
    start = parse_time(raw["start"])

    def at(seconds: float) -> str:
        return (start + timedelta(seconds=seconds)).isoformat()

    timeline = [{"node": n, "at": at(0), "ready": "True"}
                for n in ("server-etcd-0", "server-cp-0")]
    timeline += [{"node": "agent-0", "at": at(s), "ready": ready}
                 for s, ready in agent_steps]
    faults = [{"id": "p-demo", "kind": "partition", "nodes": ["agent-0"],
               "peers": ["server-cp-0"], "description": "drop agent-0",
               "started_at": at(cut),
               "ended_at": at(heal) if heal is not None else None}]
    raw["chaosk3s"] = journal_section.section(
        "lab", "chaosk3s-lab", NODES, timeline, faults,
        {"server-etcd-0": "True", "server-cp-0": "True", "agent-0": final},
        ["v1.28.15+k3s1"] * 3)
    return raw


DEMO = [(0, "True"), (13.9, "Unknown"), (24.9, "False"), (25.4, "True")]


def page_of(tmp_path: Path, raw: dict, name: str = "journal.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(raw))
    return html.unescape(render_report(load_journal(path)))


def cells(row: str) -> list[str]:
    found = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in found]


def outage_rows(page: str, node: str) -> list[list[str]]:
    """Per outage: NotReady at, Ready again at, outage, fault, time to
    NotReady, time to Ready after the heal (the node's name, role and
    outcome span its rows: they are in the first one only)."""
    rows = re.findall(rf'<tr class="outage" data-node="{re.escape(node)}">'
                      r"(.*?)</tr>", page, re.S)
    return [found[2:8] if len(found) == 9 else found
            for found in map(cells, rows)]


def test_demo_headline_says_the_outage_not_the_heal_to_ready_time(tmp_path):
    journal_path = tmp_path / "journal.json"
    journal_path.write_text(json.dumps(demo_journal(DEMO)))
    journal = load_journal(journal_path)
    assert journal.verdict.kind == "completed"
    assert ("the longest outage lasted 11.5 s (agent-0: NotReady at "
            "+13.9 s, Ready at +25.4 s)") in journal.verdict.reason
    assert ("the slowest return to Ready took 1.0 s after its fault was "
            "healed") in journal.verdict.reason
    page = html.unescape(render_report(journal))
    longest = page.split('id="longest-outage">', 1)[1].split("</dd>", 1)[0]
    assert longest.startswith("11.5 s") and "agent-0" in longest


def test_demo_per_node_and_per_role_tables(tmp_path):
    page = page_of(tmp_path, demo_journal(DEMO))
    [row] = outage_rows(page, "agent-0")
    # offsets with the absolute UTC time beside them (the run started at
    # 21:39:50 UTC)
    assert row == ["+13.9 s (21:40:03.9 UTC)", "+25.4 s (21:40:15.4 UTC)",
                   "11.5 s", "p-demo", "5.9 s", "1.0 s"]
    first = re.search(r'<tr class="outage" data-node="agent-0">(.*?)</tr>',
                      page, re.S).group(1)
    assert cells(first)[0].startswith("agent-0")
    assert cells(first)[-1] == "recovered"
    role = re.search(r"<tr><td><b>agent</b></td>(.*?)</tr>", page, re.S)
    assert cells(role.group(1))[-3:] == ["5.9 s", "1.0 s", "11.5 s"]
    assert ("part of an outage from +13.9 s (21:40:03.9 UTC) to +25.4 s "
            "(21:40:15.4 UTC) (11.5 s)") in page


def test_index_and_trend_show_the_outage(tmp_path):
    run = tmp_path / "plan" / "run1"
    run.mkdir(parents=True)
    (run / "journal.json").write_text(json.dumps(demo_journal(DEMO)))
    page = html.unescape(update_index(tmp_path).read_text())
    row = re.search(r'<tr><td class="num">.*?</tr>',
                    page.split('id="runs"', 1)[1], re.S).group(0)
    assert cells(row)[5:8] == ["11.5 s", "1.0 s", "agent 11.5 s"]
    assert "longest outage 11.5 s" in page.split('id="trend"', 1)[1]
    assert "Longest outage per experiment" in page


def old_nodes(raw: dict, recovery_seconds: float) -> dict:
    """The section's nodes as chaosk3s wrote them before outages were
    kept: recovery_seconds was the time from the heal to Ready."""
    start = parse_time(raw["start"])
    raw["chaosk3s"]["nodes"]["agent-0"] = {
        "role": "agent", "at_risk": True,
        "not_ready_at": (start + timedelta(seconds=13.9)).isoformat(),
        "ready_at": (start + timedelta(seconds=25.4)).isoformat(),
        "recovered": True, "recovery_seconds": recovery_seconds}
    for node in ("server-etcd-0", "server-cp-0"):
        raw["chaosk3s"]["nodes"][node] = {
            "role": raw["chaosk3s"]["nodes"][node]["role"],
            "at_risk": False, "not_ready_at": None, "ready_at": None,
            "recovered": True, "recovery_seconds": None}
    return raw


def test_old_journal_with_a_timeline_is_measured_from_it(tmp_path):
    page = page_of(tmp_path, old_nodes(demo_journal(DEMO), 7.7))
    [row] = outage_rows(page, "agent-0")
    assert [c.split(" (")[0] for c in row] == [
        "+13.9 s", "+25.4 s", "11.5 s", "p-demo", "5.9 s", "1.0 s"]
    assert "the longest outage lasted 11.5 s" in page
    assert "7.7 s" not in page


@pytest.mark.parametrize("faults", [True, False])
def test_old_journal_without_a_timeline_never_calls_recovery_an_outage(
        tmp_path, faults):
    """recovery_seconds is not read: with faults both times are computed
    again; without, there is no heal to count from."""
    raw = old_nodes(demo_journal(DEMO), 7.7)
    raw["chaosk3s"]["timeline"] = []
    if not faults:
        raw["chaosk3s"]["faults"] = []
    page = page_of(tmp_path, raw)
    [row] = outage_rows(page, "agent-0")
    assert row[2] == "11.5 s"
    assert row[3:6] == (["p-demo", "5.9 s", "1.0 s"] if faults
                        else ["none", "—", "—"])
    assert "the longest outage lasted 11.5 s" in page
    assert "7.7 s" not in page


def test_flapping_node_gets_a_row_per_outage_and_an_open_one(tmp_path):
    steps = [(0, "True"), (12, "Unknown"), (14, "True"), (15, "False"),
             (15.5, "True"), (40, "False")]
    raw = demo_journal(steps, heal=30, final="True")
    page = page_of(tmp_path, raw)
    rows = outage_rows(page, "agent-0")
    assert [r[2] for r in rows] == [
        "2.0 s", "500 ms", "≥ 24.0 s, not over"]  # the run ends at +64 s
    assert rows[2][1] == "never"
    assert [r[5] for r in rows] == ["16.0 s before the heal",
                                    "14.5 s before the heal", "—"]
    journal = load_journal(tmp_path / "journal.json")
    assert ("1 node(s) were not Ready again by the end of the run "
            "(agent-0)") in journal.verdict.reason
    assert "the longest outage lasted 2.0 s" in journal.verdict.reason


def test_variables_and_lab_are_in_the_header(tmp_path):
    raw = lab_journal()
    raw["chaosk3s"]["variables"]["lab_token"] = "s3cr3t-value"
    page = page_of(tmp_path, raw)
    tested = page.split('id="tested"', 1)[1].split("</section>", 1)[0]
    assert "lab_k3s_version" in tested and "v1.28.15+k3s1" in tested
    assert "partition_seconds" in tested and "30.0" in tested
    assert "s3cr3t-value" not in page and REDACTED in tested
    text = re.sub(r"<[^>]+>", "", tested)
    assert "Release v1.28.15+k3s1 (family fix1), timings profile lab." \
        in text
    assert "node_monitor_grace" in tested and "10.0 s" in tested
    facts = page.split('id="facts"', 1)[1].split("</section>", 1)[0]
    assert "v1.28.15+k3s1 (fix1) · timings lab" in re.sub(
        r"<[^>]+>", "", facts)


def test_older_journal_and_real_cluster_headers(tmp_path):
    raw = lab_journal()
    del raw["chaosk3s"]["variables"], raw["chaosk3s"]["lab"]
    page = page_of(tmp_path, raw, "old.json")
    assert "does not record the variables in force" in page
    assert 'id="lab-timings"' not in page
    raw["chaosk3s"].update(lab=None, variables={})
    page = page_of(tmp_path, raw, "real.json")
    assert "a real cluster (no lab)" in page
    assert "The experiment declares no variables." in page
