"""The emulated API server's list cache after deletions, through the
kubernetes client over real HTTP and real etcd: a list never shows an
object already deleted, also when the deletion leaves the collection
empty (it did: the last pod a drain evicted was still listed)."""

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
