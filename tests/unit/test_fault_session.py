"""The FaultSession's semantics, root-free: record before apply, the heal
order, bounded retries, one closing rule, what is reported open, and
apply/heal serialization. Nodes are fakes behind the recording
transport (tests/unit/fakecluster.py); the ledger is a real file."""

import json
import threading
import time

import pytest

from chaosk3s.errors import ChaosK3sError, SpecError
from chaosk3s.faults.session import FaultSession
from chaosk3s.faults.timers import start_timer_name
from chaosk3s.faults.undo import heal_order
from chaosk3s.ledger import Ledger
from chaosk3s.model import Access, Cut, FaultPlan, Node
from tests.unit.fakecluster import COMMANDS, FakeCluster

NAMES = ["agent-0", "agent-1", "server-cp-0"]
ADDRESSES = {"agent-0": "10.0.0.20", "agent-1": "10.0.0.21",
             "server-cp-0": "10.0.0.12"}


class Ports:
    """The session's ports onto a FakeCluster."""

    def __init__(self, cluster: FakeCluster):
        self.cluster = cluster
        self.ready = True

    def transport(self, node):
        return self.cluster.transport(node.name)

    def node(self, name):
        return node(name)

    def commands(self, node):
        return dict(COMMANDS)

    def readiness_mark(self, name):
        return None

    def ready_since(self, name, mark):
        return self.ready


def node(name: str) -> Node:
    role = "control-plane" if name.startswith("server") else "agent"
    return Node(name, role, ADDRESSES[name], None,
                Access("ssh", host=ADDRESSES[name]))


@pytest.fixture
def ledger_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSK3S_LEDGER_DIR", str(tmp_path / "ledger"))
    return tmp_path / "ledger"


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster(NAMES)


@pytest.fixture
def session(ledger_dir, cluster) -> FaultSession:
    return FaultSession(Ledger("run1", "test"), Ports(cluster),
                        retry_delay=0.01)


def cut_plan(*nodes: str, peer: str = "server-cp-0",
             ttl: float = 60) -> FaultPlan:
    return FaultPlan("pending", tuple(Cut(n, peer, ADDRESSES[peer])
                                      for n in nodes), ttl)


def partition(session, *nodes: str) -> str:
    done = session.partition(cut_plan(*nodes), [node(n) for n in nodes],
                             ["server-cp-0"], "test cut", [])
    return done["fault_id"]


def test_the_fault_is_on_disk_before_any_node_is_changed(session, cluster,
                                                         ledger_dir):
    seen = {}

    def ledger_now(name):
        seen[name] = json.loads((ledger_dir / "run1.json").read_text())
    cluster.hooks["apply"] = ledger_now
    fault = partition(session, "agent-0")
    (entry,) = seen["agent-0"]["faults"]
    assert entry["id"] == fault and entry["ended_at"] is None
    assert entry["undo"]["agent-0"]["node"]["access"]["host"] == \
        "10.0.0.20"  # how to reach it without the API
    assert "CHAOSK3S-run11" in cluster.nodes["agent-0"].chains


def test_a_stop_arms_its_node_side_start_before_stopping(session, cluster):
    done = session.node_fault("stop", node("agent-0"), dict(COMMANDS), 5,
                              start_after=42)
    order = [c.text for c in cluster.log if c.node == "agent-0"]
    armed = next(i for i, t in enumerate(order) if "echo armed" in t)
    stopped = order.index(COMMANDS["stop"])
    assert armed < stopped
    assert "sleep 47" in order[armed]  # the hold plus the stop's bound
    timer = start_timer_name(done["fault_id"])
    assert cluster.nodes["agent-0"].timers == {timer: done["fault_id"]}
    started = session.start(node("agent-0"), dict(COMMANDS), 5)
    assert started["closed_faults"] == [done["fault_id"]]
    assert cluster.nodes["agent-0"].timers == {}  # cancelled by the run
    (entry,) = session.ledger.entries()
    assert entry["ended_at"] and entry["healed_by"] == "start_k3s"


def test_heal_order_links_first_then_services_newest_first(session,
                                                           cluster):
    first = partition(session, "agent-0")
    session.node_fault("stop", node("server-cp-0"), dict(COMMANDS), 5,
                       start_after=60)
    second = partition(session, "agent-1")
    assert [e["id"] for e in heal_order(session.ledger.entries())] == [
        second, first, "run12"]
    cluster.log.clear()
    report = session.heal()
    assert report.ok and sorted(report.healed) == sorted(
        [first, second, "run12"])
    assert cluster.sent("heal") == ["agent-1", "agent-0"]
    kinds = cluster.kinds()
    assert kinds.index(("server-cp-0", "start")) > kinds.index(
        ("agent-0", "heal"))
    assert cluster.nodes["server-cp-0"].active


def test_a_node_that_fails_is_retried_within_the_walk(session, cluster):
    fault = partition(session, "agent-0", "agent-1")
    cluster.nodes["agent-1"].fail["heal"] = 2
    report = session.heal()
    assert report.ok and report.healed == [fault]
    heals = cluster.sent("heal")
    assert heals.count("agent-1") == 3 and heals.count("agent-0") == 1


def test_an_unreachable_node_is_reported_open_and_stops_nothing(session,
                                                                cluster):
    """Reproduction (issue 12): a partition on an unreachable agent
    followed by a stop on server-cp-0: `systemctl start` never reached
    server-cp-0. Now every other fault and node is healed, and exactly
    the unreachable node's part stays open, with why."""
    cut = partition(session, "agent-0", "agent-1")
    session.node_fault("stop", node("server-cp-0"), dict(COMMANDS), 5,
                       start_after=60)
    cluster.nodes["agent-1"].reachable = False
    report = session.heal()
    assert cluster.nodes["server-cp-0"].active
    assert "CHAOSK3S-run11" not in cluster.nodes["agent-0"].chains
    assert [(o["fault_id"], o["node"]) for o in report.open] == [
        (cut, "agent-1")]
    assert "No route to host" in report.open[0]["error"]
    entry = session.ledger.entries()[0]
    assert entry["open_nodes"] == ["agent-1"] and entry["ended_at"] is None
    cluster.nodes["agent-1"].reachable = True
    again = session.heal()
    assert again.ok and again.healed == [cut]


def test_a_fault_is_closed_only_when_read_back_shows_it_gone(session,
                                                             cluster):
    fault = partition(session, "agent-0")
    chain = dict(cluster.nodes["agent-0"].chains)
    cluster.hooks["readback"] = lambda name: \
        cluster.nodes[name].chains.update(chain)  # heal "lies"
    report = session.heal()
    assert [o["node"] for o in report.open] == ["agent-0"]
    assert "still active" in report.open[0]["error"]
    assert session.ledger.entries()[0]["ended_at"] is None
    del cluster.hooks["readback"]
    cluster.seen_before.clear()
    assert session.heal().healed == [fault]


def test_heal_waits_for_an_apply_in_flight_and_heals_it_too(session,
                                                            cluster):
    """Reproduction (issue 12): SIGTERM's heal ran while an apply was in
    flight; the fault was marked ended, then the apply landed and its
    rules stayed until their ttl."""
    cluster.gate["apply"] = threading.Event()
    applying = threading.Thread(target=partition, args=(session,
                                                        "agent-0"))
    applying.start()
    while not session.ledger.entries():
        time.sleep(0.01)  # recorded; the apply is blocked on the node
    reports = []
    healer = threading.Thread(target=lambda: reports.append(
        session.heal()))
    healer.start()
    time.sleep(0.3)
    assert healer.is_alive(), "the heal did not wait for the apply"
    cluster.gate["apply"].set()  # the apply lands now
    applying.join(10)
    healer.join(10)
    assert reports[0].ok and reports[0].healed == ["run11"]
    assert cluster.nodes["agent-0"].chains == {}


def test_a_closed_session_refuses_new_faults_but_still_heals(session,
                                                             cluster):
    fault = partition(session, "agent-0")
    session.close()
    with pytest.raises(ChaosK3sError, match="refused"):
        partition(session, "agent-1")
    assert cluster.nodes["agent-1"].chains == {}
    assert session.heal().healed == [fault]


def test_eight_faults_at_once_get_eight_ids_and_chains(session, cluster):
    """Reproduction (issue 12): eight background activities all got the
    same fault id, and one plan silently replaced another's cut."""
    ids, errors = [], []

    def cut(name):
        try:
            ids.append(partition(session, name))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=cut, args=(n,))
               for n in ["agent-0", "agent-1"] * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and len(set(ids)) == 8
    chains = {c for n in cluster.nodes.values() for c in n.chains}
    assert len(chains) == 8
    assert len(session.ledger.entries()) == 8


def test_a_failed_apply_is_closed_by_read_back(session, cluster):
    cluster.nodes["agent-1"].fail["apply"] = 1
    with pytest.raises(ChaosK3sError, match="agent-1"):
        partition(session, "agent-0", "agent-1")
    (entry,) = session.ledger.entries()
    assert entry["ended_at"] and entry["healed_by"] == "apply failed"
    assert all(not n.chains for n in cluster.nodes.values())


def test_the_guard_runs_inside_the_ledger_lock_and_refusals_record_nothing(
        session, cluster):
    def refuse(entries):
        raise SpecError(f"refused with {len(entries)} open")
    with pytest.raises(SpecError, match="refused with 0 open"):
        session.partition(cut_plan("agent-0"), [node("agent-0")],
                          ["server-cp-0"], "x", [], refuse)
    assert session.ledger.entries() == []
    assert cluster.sent("apply") == []


def test_restart_one_at_a_time_waits_until_the_node_is_back(session,
                                                            cluster):
    ports = session.ports
    ports.ready = False
    with pytest.raises(ChaosK3sError, match="node Ready"):
        session.node_fault("restart", node("agent-0"), dict(COMMANDS), 0.3,
                           back=True)
    ports.ready = True
    done = session.node_fault("restart", node("agent-0"), dict(COMMANDS), 2,
                              back=True)
    assert done["back"]["seconds"] < 2
    entries = session.ledger.entries()
    assert all(e["ended_at"] for e in entries)  # restarted: seen back
