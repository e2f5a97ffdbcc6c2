"""A cordon as a fault: recorded before chaostoolkit-kubernetes' drain,
healed (uncordoned) by the session's heal walk, read back from the API.
Real HTTP, real etcd, the emulated API server and chaosk8s's own
actions; the ledger is a real file. Root-free."""

import json
import os

import pytest
from kubernetes import client
from kubernetes.config import kube_config

from chaosk3s import actions
from chaosk3s.errors import ChaosK3sError, SpecError
from chaosk3s.faults import cordon
from chaosk3s.faults.session import FaultSession
from chaosk3s.faults.undo import heal_order
from chaosk3s.kube import Kube
from chaosk3s.ledger import Ledger, ledger_dir
from chaosk3s.model import Access, Node
from chaosk3s.plan import describe
from chaosk3s.run import end_run
from chaosk3s.target import get_target
from tests.unit import test_heal_reproductions as heal_tests
from tests.unit.conftest import write_kubeconfig
from tests.unit.test_apiserver import kube, node_body
from tests.unit.test_apiserver_drain import pod

AGENT = Node("agent-0", "agent", "10.0.0.20", None,
             Access("ssh", host="10.0.0.20"))


class ApiPorts:
    """The session's ports: only the API (a cordon touches no node)."""

    def __init__(self, kubeconfig: str):
        self.kube = Kube(kubeconfig, [None])

    def api(self) -> Kube:
        return self.kube


@pytest.fixture
def decoy(tmp_path, monkeypatch) -> str:
    """The operator's own kubeconfig, naming a server nobody listens on,
    as $KUBECONFIG and as the kubernetes package's default path (read
    at its import): had chaosk8s used it, every call would fail."""
    path = str(write_kubeconfig(tmp_path / "decoy", "http://127.0.0.1:9"))
    monkeypatch.setenv("KUBECONFIG", path)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", path)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture
def cluster(api, tmp_path, monkeypatch, decoy):
    """The emulated API with agent-0 (a ReplicaSet's pod and a
    DaemonSet's) and agent-1 (a ReplicaSet's pod); a session whose
    target's kubeconfig names it."""
    monkeypatch.setenv("CHAOSK3S_LEDGER_DIR", str(tmp_path / "ledger"))
    v1 = client.CoreV1Api(kube(api))
    for name in ("agent-0", "agent-1"):
        v1.create_node(node_body(name))
    v1.create_namespaced_pod("default", pod("web-1", "agent-0",
                                            "ReplicaSet"))
    v1.create_namespaced_pod("default", pod("logs-1", "agent-0",
                                            "DaemonSet"))
    v1.create_namespaced_pod("default", pod("web-2", "agent-1",
                                            "ReplicaSet"))
    kubeconfig = write_kubeconfig(tmp_path / "target", api.url)
    session = FaultSession(Ledger("run1", "test"), ApiPorts(str(kubeconfig)),
                           retry_delay=0.01)
    return v1, session


def pods(v1) -> set[tuple[str, str]]:
    return {(p.metadata.name, p.spec.node_name)
            for p in v1.list_pod_for_all_namespaces().items}


def test_a_cordon_is_recorded_drained_by_chaosk8s_and_healed(cluster,
                                                              decoy):
    v1, session = cluster
    done = session.cordon(AGENT, drain_timeout=10)
    assert v1.read_node("agent-0").spec.unschedulable is True
    assert v1.read_node("agent-1").spec.unschedulable in (None, False)
    assert pods(v1) == {("logs-1", "agent-0"), ("web-2", "agent-1")}
    assert done["evicted"] == ["default/web-1"]
    assert done["kept"] == ["default/logs-1"]
    (entry,) = session.ledger.entries()
    assert entry["id"] == done["fault_id"] and entry["kind"] == "cordon"
    assert entry["started_at"] <= entry["applied_at"]
    assert entry["ended_at"] is None and entry["open_nodes"] == ["agent-0"]
    # the operator's environment is as it was
    assert os.environ["KUBECONFIG"] == decoy
    assert kube_config.KUBE_CONFIG_DEFAULT_LOCATION == decoy
    report = session.heal(by="cleanup")
    assert report.ok and report.healed == [done["fault_id"]]
    assert v1.read_node("agent-0").spec.unschedulable is False
    (entry,) = session.ledger.entries()
    assert entry["healed_by"] == "cleanup" and entry["ended_at"]


def test_a_drain_failing_after_the_cordon_leaves_it_open_for_the_heal(
        cluster):
    v1, session = cluster
    bare = pod("debug", "agent-0", "ReplicaSet")
    bare["metadata"]["ownerReferences"] = []  # no controller owns it
    v1.create_namespaced_pod("default", bare)
    with pytest.raises(ChaosK3sError, match="default/debug"):
        session.cordon(AGENT, drain_timeout=10)
    # chaosk8s cordoned the node before it met the pod it cannot evict
    assert v1.read_node("agent-0").spec.unschedulable is True
    (entry,) = session.ledger.open_faults()
    assert "still cordoned" in entry["errors"]["agent-0"]
    assert session.heal(by="cleanup").ok
    assert v1.read_node("agent-0").spec.unschedulable is False
    assert session.ledger.open_faults() == []


def test_a_node_cordoned_by_someone_else_is_refused_and_left_cordoned(
        cluster):
    v1, session = cluster
    v1.patch_node("agent-0", {"spec": {"unschedulable": True}})
    with pytest.raises(SpecError, match="already cordoned"):
        session.cordon(AGENT, drain_timeout=10)
    assert session.ledger.entries() == []
    assert v1.read_node("agent-0").spec.unschedulable is True
    assert ("web-1", "agent-0") in pods(v1)


def test_chaosk8s_reaching_another_server_is_refused(tmp_path):
    ours = Kube(str(write_kubeconfig(tmp_path / "k", "http://10.9.9.9:1")),
                [None])
    theirs = client.Configuration(host="http://127.0.0.1:6443")
    with pytest.raises(SpecError, match="nothing was cordoned") as error:
        cordon._same_server(ours, None, theirs)
    assert "10.9.9.9" in str(error.value) and "127.0.0.1" in str(error.value)


def test_cordons_are_healed_after_links_and_services():
    entries = [{"id": i, "kind": k} for i, k in (
        ("c1", "cordon"), ("r1", "restart"), ("p1", "partition"),
        ("c2", "cordon"), ("s1", "stop"))]
    assert [e["id"] for e in heal_order(entries)] == [
        "p1", "s1", "r1", "c2", "c1"]


def test_the_maintenance_form_needs_one_node_at_a_time():
    from chaosk3s.actions import restart_k3s
    with pytest.raises(SpecError, match="one node at a time"):
        restart_k3s(nodes="agent", one_at_a_time=False, drain=True,
                    configuration={"target": "/nonexistent/inventory.yaml"})


world = heal_tests.world  # the fake cluster behind the emulated API


def _maintenance(tmp_path, target: str) -> str:
    path = tmp_path / "maintenance.json"
    path.write_text(json.dumps({
        "title": "maintenance", "description": "x",
        "configuration": {"target": target},
        "method": [{"type": "action", "name": "maintain", "provider": {
            "type": "python", "module": "chaosk3s.actions",
            "func": "restart_k3s", "arguments": {
                "nodes": "agent", "drain": "true"}}}]}))
    return str(path)


def test_restart_k3s_drain_cordons_restarts_then_uncordons(world):
    for agent in ("agent-0", "agent-1"):
        world.core.create_namespaced_pod("default", pod(
            f"web-{agent}", agent, "ReplicaSet"))
    done = actions.restart_k3s("agent", drain="true", drain_timeout="10",
                               configuration=world.config)
    assert world.cluster.sent("restart") == ["agent-0", "agent-1"]
    assert [n["drain"]["evicted"] for n in done["nodes"]] == [
        ["default/web-agent-0"], ["default/web-agent-1"]]
    assert world.core.list_namespaced_pod("default").items == []
    assert not any(n.spec.unschedulable
                   for n in world.core.list_node().items)
    faults = [e for p in ledger_dir().glob("*.json")
              for e in json.loads(p.read_text())["faults"]]
    for agent in ("agent-0", "agent-1"):
        [held] = [f for f in faults
                  if f["kind"] == "cordon" and f["nodes"] == [agent]]
        [restart] = [f for f in faults
                     if f["kind"] == "restart" and f["nodes"] == [agent]]
        assert held["healed_by"] == "uncordon"
        assert held["started_at"] <= restart["started_at"]
        assert restart["ended_at"] <= held["ended_at"]


def test_plan_shows_the_cordon_around_each_restart(world, tmp_path):
    text = describe(_maintenance(tmp_path, world.config["target"]), {})
    lines = [line.strip() for line in text.splitlines()
             if line.strip().startswith("agent-")]
    assert lines == [
        "agent-0: cordon and drain (chaostoolkit-kubernetes drain_nodes)",
        "agent-0: systemctl restart k3s", "agent-0: uncordon once back",
        "agent-1: cordon and drain (chaostoolkit-kubernetes drain_nodes)",
        "agent-1: systemctl restart k3s", "agent-1: uncordon once back"]
    assert not any(n.spec.unschedulable      # a plan changes nothing
                   for n in world.core.list_node().items)


def test_chaosk3s_cleanup_lists_and_uncordons_a_cordon_left_open(world):
    """A runner that died after the cordon (its ledger left open):
    `chaosk3s faults` lists it, `chaosk3s cleanup` uncordons it."""
    from chaosk3s.faults_cli import listing
    from chaosk3s.run import current_run
    from chaosk3s.safe_cleanup import heal_everything
    agent = get_target(world.config).topology().node("agent-1")
    current_run(world.config).session.cordon(agent, 10)
    end_run()  # the runner is gone; its ledger stays
    assert world.core.read_node("agent-1").spec.unschedulable is True
    [found] = listing(world.config)["recorded"]
    assert (found["kind"], found["open_nodes"]) == ("cordon", ["agent-1"])
    report = heal_everything(world.config)
    assert report.ok and len(report.healed) == 1, report
    assert world.core.read_node("agent-1").spec.unschedulable is False
    assert listing(world.config)["recorded"] == []


def test_the_maintenance_experiment_fits_one_node_per_role():
    from chaosk3s.blast import Caps
    from tests.unit.test_blast import _problems
    one = Caps.of({"per_fault": {"default": 1}, "per_run": {"default": 1}})
    assert _problems("node_restart_maintenance.json", one) == []
    none = Caps.of({"per_fault": {"default": 1, "agent": 0}})
    assert [p.split(":")[0] for p in _problems(
        "node_restart_maintenance.json", none)] == [
        "method activity 'maintain-nodes-one-at-a-time'"]
