"""What a drain needs from the lab's emulated API server (real HTTP, real
etcd): node patch, the pods on a node and their eviction, driven by
chaostoolkit-kubernetes' own cordon/drain/uncordon actions."""

import pytest
import requests
from chaosk8s.node.actions import drain_nodes, uncordon_node
from kubernetes import client

from tests.unit.test_apiserver import kube, node_body


def pod(name: str, node: str, owner: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "namespace": "default", "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": owner, "name": f"{name}-owner",
            "uid": f"uid-{name}", "controller": True}]},
        "spec": {"nodeName": node, "containers": [
            {"name": "app", "image": "registry.example/app:1"}],
            "volumes": [{"name": "config", "configMap": {"name": "app"}}]},
        "status": {"phase": "Running"}}


@pytest.fixture
def secrets(api, tmp_path, monkeypatch) -> dict:
    """chaosk8s' own client, pointed at the emulated API (no kubeconfig:
    its KUBERNETES_HOST path)."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    return {"KUBERNETES_HOST": api.url}


def test_chaosk8s_drains_a_node_of_its_managed_pods(api, secrets):
    v1 = client.CoreV1Api(kube(api))
    for name in ("agent-0", "agent-1"):
        v1.create_node(node_body(name))
    v1.create_namespaced_pod("default", pod("web-1", "agent-0",
                                            "ReplicaSet"))
    v1.create_namespaced_pod("default", pod("logs-1", "agent-0",
                                            "DaemonSet"))
    v1.create_namespaced_pod("default", pod("web-2", "agent-1",
                                            "ReplicaSet"))
    assert drain_nodes(name="agent-0", timeout=10, secrets=secrets) == [
        "agent-0"]
    assert v1.read_node("agent-0").spec.unschedulable is True
    assert v1.read_node("agent-1").spec.unschedulable in (None, False)
    left = {(p.metadata.name, p.spec.node_name) for p in
            v1.list_pod_for_all_namespaces().items}
    # evicted: the ReplicaSet's pod; kept: the DaemonSet's, the other node's
    assert left == {("logs-1", "agent-0"), ("web-2", "agent-1")}
    assert uncordon_node(name="agent-0", secrets=secrets) == ["agent-0"]
    assert v1.read_node("agent-0").spec.unschedulable is False


def test_an_eviction_is_a_201_status_and_needs_an_eviction_body(api):
    v1 = client.CoreV1Api(kube(api))
    v1.create_namespaced_pod("default", pod("web-1", "agent-0",
                                            "ReplicaSet"))
    url = f"{api.url}/api/v1/namespaces/default/pods/web-1/eviction"
    session = requests.Session()
    session.trust_env = False
    wrong = session.post(url, json={"kind": "Pod"}, timeout=5)
    assert wrong.status_code == 400 and "Eviction" in wrong.json()["message"]
    other = session.post(url, json={"kind": "Eviction", "metadata": {
        "name": "web-2"}}, timeout=5)
    assert other.status_code == 400
    done = session.post(url, json={"apiVersion": "policy/v1",
                                   "kind": "Eviction",
                                   "metadata": {"name": "web-1"}}, timeout=5)
    assert done.status_code == 201
    assert done.json()["status"] == "Success"
    gone = session.post(url, json={"kind": "Eviction"}, timeout=5)
    assert gone.status_code == 404
    assert v1.list_namespaced_pod("default").items == []
    core = session.get(f"{api.url}/api/v1", timeout=5).json()
    assert {"pods", "pods/eviction"} <= {r["name"] for r in
                                         core["resources"]}
