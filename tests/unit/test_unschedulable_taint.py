"""The lab's node lifecycle controller keeps the unschedulable taint in
line with spec.unschedulable, as kube-controller-manager's
doNoScheduleTaintingPass does: real etcd, a real API server, the
kubernetes client's patches (what `kubectl cordon` sends)."""

from kubernetes import client

from tests.unit.conftest import wait_for
from tests.unit.test_apiserver import kube, node_body
from tests.unit.test_controllers import FAST

UNSCHEDULABLE = ("node.kubernetes.io/unschedulable", "NoSchedule")


def taints(v1, name: str) -> list[tuple[str, str]]:
    return sorted((t.key, t.effect)
                  for t in v1.read_node(name).spec.taints or [])


def test_a_cordon_adds_the_taint_and_an_uncordon_removes_it(
        etcd_single, api_factory):
    api = api_factory(etcd_single.endpoints, timings=FAST)
    v1 = client.CoreV1Api(kube(api))
    for name in ("agent-0", "agent-1"):
        v1.create_node(node_body(name))
    v1.patch_node("agent-0", {"spec": {"unschedulable": True}})
    wait_for(lambda: taints(v1, "agent-0") == [UNSCHEDULABLE],
             timeout=10, what="the unschedulable taint")
    added = v1.read_node("agent-0").spec.taints[0].time_added
    assert added is not None
    assert taints(v1, "agent-1") == []
    # a later pass keeps the taint as it is (its timeAdded too)
    v1.patch_node("agent-0", {"metadata": {"labels": {"x": "y"}}})
    wait_for(lambda: v1.read_node("agent-0").metadata.labels == {"x": "y"},
             what="the label")
    assert v1.read_node("agent-0").spec.taints[0].time_added == added
    v1.patch_node("agent-0", {"spec": {"unschedulable": False}})
    wait_for(lambda: taints(v1, "agent-0") == [], timeout=10,
             what="the taint removed")
