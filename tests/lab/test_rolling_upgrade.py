"""rolling_upgrade_outage.json on the lab: its verdict per release pair,
and, from the journal, what ran: the activities in order, which nodes
each upgrade touched with their versions before and after (read from the
API by the action), the control plane stopped and the API gone between
the server half and the agent half of the roll.

The roll: etcd-only servers, control-plane servers, an outage, agents.
From an affected release to a fixed one the agents (still affected when
the control plane goes down) strand until their own upgrade restarts
them, and the run completes. To an affected release the etcd-only
servers, already upgraded before the outage, strand and nothing restarts
them again: the run deviates.
"""

from datetime import datetime

import pytest

from tests.lab.test_experiments import (
    AFFECTED_1_28,
    FIXED_1_28,
    chaos_run,
    no_lab_up,  # noqa: F401 - the autouse fixture: no other lab is up
)

pytestmark = pytest.mark.lab
slow = pytest.mark.equivalence  # about 2 minutes: the slow tier runs it
EXPERIMENT = "rolling_upgrade_outage.json"
OLDER_AFFECTED = "v1.28.13+k3s1"
ETCD = ["server-etcd-0", "server-etcd-1", "server-etcd-2"]
CONTROL_PLANE = ["server-cp-0", "server-cp-1"]
AGENTS = ["agent-0", "agent-1"]
METHOD = ["upgrade-etcd-servers", "upgrade-control-plane-servers",
          "stop-control-plane", "api-unanswered-during-outage",
          "start-control-plane", "nodes-not-ready-before-the-agents-upgrade",
          "upgrade-agents", "wait-for-every-node-ready"]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _runs(journal: dict) -> dict[str, dict]:
    return {r["activity"]["name"]: r for r in journal["run"]}


def _roll_ran(journal: dict, start: str, target: str) -> dict[str, dict]:
    """Every method activity ran, in order; each upgrade went node by node
    from start to target (as the API said); the control plane was
    stopped, and the API gone, between the servers and the agents."""
    assert [r["activity"]["name"] for r in journal["run"]] == METHOD
    runs = _runs(journal)
    for step, nodes in (("upgrade-etcd-servers", ETCD),
                        ("upgrade-control-plane-servers", CONTROL_PLANE),
                        ("upgrade-agents", AGENTS)):
        assert runs[step]["status"] == "succeeded", runs[step]
        rows = runs[step]["output"]["nodes"]
        assert [r["node"] for r in rows] == nodes
        assert all(r["version_before"] == start and
                   r["version_after"] == target and "skipped" not in r
                   for r in rows), rows
    stops = [f for f in journal["chaosk3s"]["faults"] if f["kind"] == "stop"]
    assert sorted(n for f in stops for n in f["nodes"]) == CONTROL_PLANE
    outage = runs["api-unanswered-during-outage"]["output"]
    assert outage["asked"] >= 3 and outage["unanswered"] == outage["asked"]
    servers_done = _at(runs["upgrade-control-plane-servers"]["end"])
    agents_begun = _at(runs["upgrade-agents"]["start"])
    assert all(servers_done <= _at(f["started_at"]) and
               _at(f["ended_at"]) <= agents_begun for f in stops)
    # no fall-back while the servers rolled one at a time: the agents,
    # still on the old release then, never went NotReady before the stop
    stopped = min(_at(f["started_at"]) for f in stops)
    for agent in AGENTS:
        assert all(_at(o["not_ready_at"]) >= stopped for o in
                   journal["chaosk3s"]["nodes"][agent]["outages"])
    upgrades = [f for f in journal["chaosk3s"]["faults"]
                if f["kind"] == "upgrade"]
    assert sorted(n for f in upgrades for n in f["nodes"]) == sorted(
        ETCD + CONTROL_PLANE + AGENTS)  # each in the ledger, ended
    assert all(f["ended_at"] for f in upgrades)
    return runs


def _hypothesis_after(journal: dict) -> dict[str, object]:
    return {p["activity"]["name"]: p["output"]
            for p in journal["steady_states"]["after"]["probes"]}


def test_affected_to_fixed_roll_completes_the_agents_stranded_until_theirs(
        tmp_path):
    result, journal = chaos_run(
        tmp_path, EXPERIMENT, f"lab_k3s_version={AFFECTED_1_28}",
        f"from_version={AFFECTED_1_28}", f"target_version={FIXED_1_28}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert journal["status"] == "completed" and not journal["deviated"]
    runs = _roll_ran(journal, AFFECTED_1_28, FIXED_1_28)
    # the affected agents fell back during the outage and stayed NotReady
    # through the watch after the control plane returned, until their
    # own upgrade: one outage each, from the outage past the watch
    stranded = runs["nodes-not-ready-before-the-agents-upgrade"]["output"]
    assert set(AGENTS) <= set(stranded)
    watched = _at(runs["nodes-not-ready-before-the-agents-upgrade"]["end"])
    for agent in AGENTS:
        assert any(_at(o["not_ready_at"]) < watched and o["ready_at"] and
                   _at(o["ready_at"]) > _at(runs["upgrade-agents"]["start"])
                   for o in journal["chaosk3s"]["nodes"][agent]["outages"]
                   ), journal["chaosk3s"]["nodes"][agent]
    for server in ETCD + CONTROL_PLANE:  # upgraded: back with the API
        assert not any(o["ready_at"] is None or _at(o["ready_at"]) > watched
                       for o in journal["chaosk3s"]["nodes"][server][
                           "outages"]), journal["chaosk3s"]["nodes"][server]
    after = _hypothesis_after(journal)
    assert after["all-nodes-ready"] is True
    assert after["all-nodes-at-the-roll-release"] is True
    before = {p["activity"]["name"]: p["output"]
              for p in journal["steady_states"]["before"]["probes"]}
    assert before["all-nodes-at-the-roll-release"] is True  # the start
    assert journal["chaosk3s"]["failed_activities"] == []


@slow
def test_a_roll_to_an_affected_release_strands_the_upgraded_etcd_servers(
        tmp_path):
    """The verdict changes with the release: the same roll and outage,
    to v1.28.15+k3s1 (affected too), leaves the secondary etcd-only
    servers (at risk, upgraded before the outage) NotReady."""
    result, journal = chaos_run(
        tmp_path, EXPERIMENT, f"lab_k3s_version={OLDER_AFFECTED}",
        f"from_version={OLDER_AFFECTED}", f"target_version={AFFECTED_1_28}",
        "recovery_timeout=8")
    assert result.returncode == 1, result.stderr[-3000:]
    assert journal["status"] == "completed" and journal["deviated"]
    _roll_ran(journal, OLDER_AFFECTED, AFFECTED_1_28)
    unrecovered = {n for n, v in journal["chaosk3s"]["nodes"].items()
                   if not v["recovered"]}
    assert unrecovered == {"server-etcd-1", "server-etcd-2"}
    # Chaos Toolkit stops the hypothesis at its first failed probe; the
    # versions after are the upgrades' own reads (_roll_ran)
    assert _hypothesis_after(journal)["all-nodes-ready"] is False
