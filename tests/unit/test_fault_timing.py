"""What a node fault's times mean (review B3): a stop holds `duration`
from when K3s is seen stopped; `expires_at` is the node's own deadline;
`ended_at` is when K3s was confirmed running again, whoever started it
(start_k3s, the heal, the node's own timer, a restart). Root-free: the
session's ports onto fake nodes (tests/unit/fakecluster.py)."""

import threading
import time
from datetime import UTC, datetime

from chaosk3s.faults.timers import start_timer_name
from chaosk3s.faults.undo import EXPIRED
from tests.unit.fakecluster import COMMANDS
from tests.unit.test_fault_session import (  # noqa: F401 - fixtures
    Ports,
    cluster,
    cut_plan,
    ledger_dir,
    node,
    session,
)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).isoformat()


def test_a_stop_holds_its_duration_from_the_confirmed_stop(
        session, cluster):  # noqa: F811
    """Was: the node-side start was armed at `duration` before the stop,
    so the outage was duration minus the stop's own time; expires_at was
    the runner's guess while the node's timer ran int(ttl)+1 s."""
    def slow_stop(name):
        time.sleep(1.2)  # the stop itself takes a while
    cluster.hooks["stop"] = slow_stop
    done = session.node_fault("stop", node("agent-0"), dict(COMMANDS), 5,
                              start_after=3)
    arms = [c for c in cluster.log if "echo armed" in c.text]
    stop = next(c for c in cluster.log if c.text == COMMANDS["stop"])
    assert [("sleep 8" in arms[0].text), ("sleep 3" in arms[1].text)] == [
        True, True]  # safety net first, then the hold itself
    assert arms[0].at < stop.at < arms[1].at
    timer = start_timer_name(done["fault_id"])
    assert cluster.nodes["agent-0"].armed[timer] == 3
    (entry,) = session.ledger.entries()
    assert entry["expires_at"] == done["starts_by_itself_at"]
    node_deadline = datetime.fromisoformat(entry["expires_at"])
    confirmed = datetime.fromisoformat(done["confirmed_at"])
    assert 3 <= (node_deadline - confirmed).total_seconds() <= 5


def test_start_k3s_ends_the_stop_when_k3s_runs_not_when_it_serves(
        session, cluster):  # noqa: F811
    """Was: a stop ended by start_k3s was stamped after the server
    served again, later than the same stop ended by the heal."""
    session.node_fault("stop", node("server-cp-0"), dict(COMMANDS), 5,
                       start_after=60)
    cluster.nodes["server-cp-0"].fail["serving"] = 3  # ~1.5 s to serve
    started = session.start(node("server-cp-0"), dict(COMMANDS), 10)
    (entry,) = session.ledger.entries()
    assert entry["healed_by"] == "start_k3s"
    assert entry["ended_at"] == started["confirmed_at"]


def test_a_stop_that_expired_ends_when_the_node_started_k3s(
        session, cluster):  # noqa: F811
    """Was: the expired path was stamped when the node's timer was due
    (its start issued), not when K3s ran."""
    session.node_fault("stop", node("agent-0"), dict(COMMANDS), 5,
                       start_after=0.2)
    time.sleep(1.5)
    cluster.fire_start_timers("agent-0")
    ran = cluster.nodes["agent-0"].started
    report = session.heal()
    (entry,) = session.ledger.entries()
    assert report.ok and entry["healed_by"] == EXPIRED
    assert entry["ended_at"] == iso(next(iter(ran.values())))


def test_a_stop_the_node_started_before_its_written_deadline_expired(
        session, cluster):  # noqa: F811
    """Seen on the lab: the node's timer fires at the ttl, but the
    deadline it writes is in whole seconds (up to one later); a heal in
    between called the stop healed by itself and not expired."""
    session.node_fault("stop", node("agent-0"), dict(COMMANDS), 5,
                       start_after=0.2)
    cluster.fire_start_timers("agent-0")  # before expires_at
    assert session.heal().ok
    (entry,) = session.ledger.entries()
    assert entry["healed_by"] == EXPIRED
    assert entry["ended_at"] == iso(next(iter(
        cluster.nodes["agent-0"].started.values())))


def test_a_restart_ends_when_confirmed_running_not_when_back(
        session, cluster):  # noqa: F811
    session.ports.ready = False
    threading.Timer(1.0, setattr, (session.ports, "ready", True)).start()
    done = session.node_fault("restart", node("agent-0"), dict(COMMANDS),
                              5, back=True)
    (entry,) = session.ledger.entries()
    assert entry["healed_by"] == "seen back"
    assert entry["ended_at"] == done["confirmed_at"] < done["back"][
        "back_at"]


def test_a_partitions_deadline_is_set_once_every_node_armed_it(
        session, cluster):  # noqa: F811
    """Was: expires_at was taken before the apply, so a slow apply left
    it earlier than the nodes' timers: read as expired while the chain
    was still there."""
    def slow_apply(name):
        time.sleep(1.0)
    cluster.hooks["apply"] = slow_apply
    session.partition(cut_plan("agent-0", ttl=5), [node("agent-0")],
                      ["server-cp-0"], "slow", [])
    (entry,) = session.ledger.entries()
    applied = datetime.fromisoformat(entry["applied_at"])
    expires = datetime.fromisoformat(entry["expires_at"])
    assert (expires - applied).total_seconds() >= 5
