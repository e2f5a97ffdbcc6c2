"""A fault the node's safety net ends before the run's own heal (review
B6): refused before the run when the experiment certainly holds it
longer than its ttl, and a failed heal_partitions / start_k3s when it
happens at run time anyway. Driven through the public functions on the
emulated API server and the fake nodes (tests/unit/fakecluster.py)."""

import json
import re
import time
from pathlib import Path

import pytest
from chaoslib.configuration import load_configuration

from chaosk3s import actions
from chaosk3s.errors import ChaosK3sError
from chaosk3s.experiment_check import check_arguments
from chaosk3s.faults.undo import EXPIRED
from chaosk3s.ledger import ledger_dir
from tests.unit.test_heal_reproductions import world  # noqa: F401

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def experiment(name: str) -> dict:
    return json.loads((EXPERIMENTS / name).read_text())


def checked(raw: dict, **variables) -> list[str]:
    return check_arguments(raw, load_configuration(
        raw.get("configuration", {}), variables))


def entries() -> list[dict]:
    return [e for p in ledger_dir().glob("*.json")
            for e in json.loads(p.read_text())["faults"]]


def test_a_ttl_below_the_hold_is_refused_before_anything_runs():
    """Was: check_arguments(etcd_only_partition, fault_ttl=5,
    partition_seconds=60) returned [] and the run said completed
    although the cut lasted 5 of 60 s."""
    raw = experiment("etcd_only_partition.json")
    (line,) = checked(raw, fault_ttl=5, partition_seconds=60)
    assert "\n" not in line
    assert "'cut-at-risk-nodes-from-control-plane'" in line
    assert "after 5 s (the value of variable fault_ttl)" in line
    assert "holds it at least 60 s before method activity " \
        "'heal-partition'" in line
    assert checked(raw, fault_ttl=60, partition_seconds=60)  # equal: too
    assert checked(raw, fault_ttl="61", partition_seconds="60") == []
    # README's real-cluster values with the shipped fault_ttl
    assert checked(raw, partition_seconds=90, recovery_timeout=120) == []


def test_pauses_and_sleeps_count_background_activities_do_not():
    raw = experiment("etcd_only_partition.json")
    raw["method"][0]["pauses"] = {"after": "${recovery_timeout}"}
    raw["method"].insert(2, {"type": "action", "name": "nap",
                             "provider": {"type": "process",
                                          "path": "/bin/sleep",
                                          "arguments": "30"},
                             "pauses": {"before": 10}})
    (line,) = checked(raw, fault_ttl=100, partition_seconds=20,
                      recovery_timeout=45)
    assert "at least 105 s" in line  # 45 + 20 + 10 + 30
    raw["method"][1]["background"] = True
    (line,) = checked(raw, fault_ttl=80, recovery_timeout=45)
    assert "at least 85 s" in line
    assert checked(raw, fault_ttl=86, recovery_timeout=45) == []


def test_a_stop_held_past_the_fault_ttl_is_refused():
    raw = experiment("control_plane_outage.json")
    assert checked(raw) == []
    (line,) = checked(raw, fault_ttl=30, first_outage_seconds=40)
    assert "'stop-first-control-plane': its stop expires on the node " \
        "after 30 s (the value of variable fault_ttl)" in line
    assert "'start-first-control-plane'" in line
    raw["method"][0]["provider"]["arguments"]["duration"] = 10
    assert checked(raw, fault_ttl=30, first_outage_seconds=40) == []
    (bad,) = checked(raw, fault_ttl="abc")
    assert bad.startswith("configuration fault_ttl='abc' is invalid")


@pytest.mark.parametrize("name,hold,heal", [
    ("control_plane_etcd_cut.json", "partition_seconds", "heal-partition"),
    ("etcd_quorum_loss.json", "outage_seconds", "start-etcd-members"),
    ("join_server_down_during_outage.json", "outage_seconds",
     "start-control-plane-without-join-server"),
])
def test_the_api_outage_hold_counts_against_the_ttl(name, hold, heal):
    """api_unanswered_within holds its seconds like
    nodes_not_ready_within: the scenarios that hold an API outage with it
    are refused when their fault_ttl is not above the hold."""
    raw = experiment(name)
    assert checked(raw) == []
    lines = checked(raw, fault_ttl=30, **{hold: 40})
    # one line per fault held: the join server's stop is held until the
    # rollback, the control plane's until the method's start
    assert any(f"activity '{heal}'" in line for line in lines), lines
    for line in lines:
        assert "after 30 s (the value of variable fault_ttl)" in line
        held = re.search(r"holds it at least (\d+) s", line)
        assert held and int(held[1]) >= 40, line


def expire_partition(world, fault_id: str) -> None:  # noqa: F811
    """What the node's timer does at the ttl: the chain goes."""
    for node in world.cluster.nodes.values():
        node.chains = {c: r for c, r in node.chains.items()
                       if not c.endswith(fault_id)}


def test_heal_partitions_fails_when_the_node_ended_the_cut_first(world):  # noqa: F811
    """Was: heal(kinds=("partition",)) returned ok with healed_by
    "expired on the node" and the run said completed."""
    cut = actions.partition_roles("agent", "control-plane", ttl=0.2,
                                  configuration=world.config)
    time.sleep(0.3)
    expire_partition(world, cut["fault_id"])
    with pytest.raises(ChaosK3sError, match=(
            f"already expired on the node before heal_partitions ran.*"
            f"fault {cut['fault_id']}.*fault_ttl")):
        actions.heal_partitions(configuration=world.config)
    (entry,) = entries()
    assert entry["healed_by"] == EXPIRED and entry["expiry_reported"]
    # reported once: the rollback's heal_partitions does not fail again
    assert actions.heal_partitions(configuration=world.config)


def test_a_cut_past_its_deadline_removed_by_the_heal_is_no_expiry(world):  # noqa: F811
    """The node's timer fires after the runner's deadline: a chain the
    heal itself removes was held, whatever the clock says."""
    actions.partition_roles("agent", "control-plane", ttl=0.2,
                            configuration=world.config)
    time.sleep(0.3)
    done = actions.heal_partitions(configuration=world.config)
    assert done["healed"] and entries()[0]["healed_by"] == \
        "heal_partitions"


def test_start_k3s_fails_when_the_stop_had_expired_on_the_node(world):  # noqa: F811
    config = {**world.config, "fault_ttl": 0.2}
    stop = actions.stop_k3s("name:agent-0", configuration=config)
    fault = stop["nodes"][0]["fault_id"]
    time.sleep(1.2)  # the node's deadline is in whole seconds
    world.cluster.fire_start_timers("agent-0")
    with pytest.raises(ChaosK3sError, match=(
            f"before start_k3s ran.*fault {fault} \\(stop k3s on agent-0")):
        actions.start_k3s("name:agent-0", configuration=config)
    assert world.node("agent-0").active
    # asked for with duration: an expiry is what was asked, no failure
    actions.stop_k3s("name:agent-0", duration=0.2, configuration=config)
    time.sleep(1.2)
    world.cluster.fire_start_timers("agent-0")
    assert actions.start_k3s("name:agent-0", configuration=config)




def test_a_stop_that_expired_no_longer_counts_in_the_quorum_guard(world):  # noqa: F811
    """Was: a stop the node had already ended (its timer started K3s
    again) still counted in the cumulative guard: the second etcd stop
    of the run was refused although etcd-0 served again."""
    short = {**world.config, "fault_ttl": 0.2}
    first = actions.stop_k3s("name:server-etcd-0", configuration=short)
    time.sleep(1.2)  # the node's deadline is in whole seconds
    world.cluster.fire_start_timers("server-etcd-0")
    actions.stop_k3s("name:server-etcd-1", configuration=world.config)
    assert not world.node("server-etcd-1").active
    done = {e["id"]: e for e in entries()}
    assert done[first["nodes"][0]["fault_id"]]["healed_by"] == EXPIRED


def test_a_partition_past_its_deadline_still_on_the_node_counts(world):  # noqa: F811
    """The runner's deadline passed but the node's timer has not fired
    (it sleeps int(ttl)+1 s): the cut is still there, so it counts, and
    nothing is noted against it."""
    cut = actions.partition_roles("name:server-etcd-0", "etcd", ttl=0.2,
                                  configuration=world.config)
    time.sleep(0.3)
    with pytest.raises(ChaosK3sError, match="without quorum"):
        actions.partition_roles("name:server-etcd-1", "name:server-etcd-2",
                                configuration=world.config)
    (entry,) = entries()
    assert entry["ended_at"] is None and entry["errors"] == {}
    expire_partition(world, cut["fault_id"])
    actions.partition_roles("name:server-etcd-1", "name:server-etcd-2",
                            configuration=world.config)
    assert entries()[0]["healed_by"] == EXPIRED
    assert world.node("server-etcd-1").chains
