"""Pods on the emulated API server, through the kubernetes client over
real HTTP and real etcd: a list never shows a pod already deleted, also
when the deletion leaves the collection empty (it did: the last pod a
drain evicted was still listed), and a new pod is Pending."""

from kubernetes import client

from tests.unit.test_apiserver import kube
from tests.unit.test_apiserver_drain import pod


def names(v1) -> list[str]:
    return [p.metadata.name for p in v1.list_pod_for_all_namespaces().items]


def test_a_list_after_the_last_delete_is_empty(api):
    v1 = client.CoreV1Api(kube(api))
    for name in ("web-1", "web-2"):
        v1.create_namespaced_pod("default", pod(name, "agent-0",
                                                "ReplicaSet"))
    assert names(v1) == ["web-1", "web-2"]
    v1.delete_namespaced_pod("web-1", "default")
    assert names(v1) == ["web-2"]
    v1.delete_namespaced_pod("web-2", "default")
    assert names(v1) == []
    assert v1.list_namespaced_pod("default").items == []
    v1.create_namespaced_pod("default", pod("web-3", "agent-0",
                                            "ReplicaSet"))
    assert names(v1) == ["web-3"]


def test_a_new_pod_is_pending_whatever_status_was_sent(api):
    """kube-apiserver resets a created pod's status (podStrategy
    .PrepareForCreate); pods/status sets it afterwards, as a kubelet
    does. chaostoolkit-kubernetes' drain reads status.phase."""
    v1 = client.CoreV1Api(kube(api))
    sent = pod("web-1", "agent-0", "ReplicaSet")
    sent["status"] = {"phase": "Succeeded"}
    assert v1.create_namespaced_pod("default", sent).status.phase == \
        "Pending"
    bare = pod("web-2", "agent-0", "ReplicaSet")
    del bare["status"]
    v1.create_namespaced_pod("default", bare)
    assert v1.read_namespaced_pod("web-2", "default").status.phase == \
        "Pending"
    v1.patch_namespaced_pod_status("web-1", "default",
                                   {"status": {"phase": "Running"}})
    assert v1.read_namespaced_pod("web-1", "default").status.phase == \
        "Running"
