"""Control-plane controllers against real etcd and real API servers."""

import json
import threading
import time
from datetime import UTC, datetime

from kubernetes import client

from tests.unit.conftest import wait_for
from tests.unit.test_apiserver import kube, node_body

FAST = {"node_monitor_grace": 2.0, "node_monitor_period": 0.2,
        "endpoint_ttl": 2.0, "endpoint_reconcile": 0.5}


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lease(name: str) -> dict:
    return {"metadata": {"name": name},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                     "renewTime": _stamp()}}


def _ready(node) -> object:
    return next(c for c in node.status.conditions if c.type == "Ready")


def test_node_lifecycle_marks_silent_node_unknown(etcd_single, api_factory):
    api = api_factory(etcd_single.endpoints, timings=FAST)
    v1 = client.CoreV1Api(kube(api))
    coord = client.CoordinationV1Api(kube(api))
    for name in ("alive", "silent"):
        v1.create_node(node_body(name))
        coord.create_namespaced_lease("kube-node-lease", _lease(name))
    created = time.monotonic()
    stop = threading.Event()

    def renew_alive():  # the kubelet of "alive" keeps its lease fresh
        while not stop.wait(0.3):
            coord.patch_namespaced_lease(
                "alive", "kube-node-lease",
                {"spec": {"renewTime": _stamp()}})

    renewer = threading.Thread(target=renew_alive, daemon=True)
    renewer.start()
    try:
        silent = wait_for(lambda: (lambda n: _ready(n).status == "Unknown"
                                   and n)(v1.read_node("silent")),
                          timeout=20, what="silent node marked Unknown")
        assert time.monotonic() - created >= FAST["node_monitor_grace"]
        ready = _ready(silent)
        assert (ready.reason, ready.message) == (
            "NodeStatusUnknown", "Kubelet stopped posting node status.")
        kinds = {c.type: c for c in silent.status.conditions}
        for kind in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            assert kinds[kind].status == "Unknown"
        taints = wait_for(lambda: v1.read_node("silent").spec.taints,
                          what="unreachable taints")
        assert sorted((t.key, t.effect) for t in taints) == [
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoSchedule")]
        events = v1.list_namespaced_event("default").items
        assert [(e.reason, e.involved_object.name) for e in events] == [
            ("NodeNotReady", "silent")]
        assert _ready(v1.read_node("alive")).status == "True"
        assert v1.read_node("alive").spec.taints is None
    finally:
        stop.set()
        renewer.join(timeout=5)
    # The kubelet comes back: Ready=True again clears the taints.
    v1.patch_node_status("silent", {"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady",
         "lastHeartbeatTime": _stamp()[:19] + "Z"}]}})
    wait_for(lambda: v1.read_node("silent").spec.taints is None,
             what="taints removed")
    assert _ready(v1.read_node("silent")).status == "True"


def _endpoint_ips(v1) -> list[str]:
    ep = v1.read_namespaced_endpoints("kubernetes", "default")
    return sorted(a.ip for s in ep.subsets or [] for a in s.addresses or [])


def _apiaddresses(api, loop_thread) -> list[str] | None:
    kv = loop_thread.run(api.etcd.get("k3s/apiaddresses"))
    return json.loads(kv.value) if kv else None


def test_endpoint_reconciler_and_apiaddresses(etcd_single, api_factory,
                                              loop_thread):
    first = api_factory(etcd_single.endpoints, "server-cp-0", FAST)
    second = api_factory(etcd_single.endpoints, "server-cp-1", FAST)
    v1 = client.CoreV1Api(kube(first))
    both = ["127.0.0.20", "127.0.0.21"]
    wait_for(lambda: _endpoint_ips(v1) == both, what="both in Endpoints")
    wait_for(lambda: _apiaddresses(first, loop_thread) == [
        "127.0.0.20:6443", "127.0.0.21:6443"], what="k3s/apiaddresses")
    # A stopped server does not remove itself: its lease expires.
    loop_thread.run(second.close())
    began = time.monotonic()
    assert _endpoint_ips(v1) == both
    wait_for(lambda: _endpoint_ips(v1) == ["127.0.0.20"],
             timeout=FAST["endpoint_ttl"] + FAST["endpoint_reconcile"] + 2,
             what="the stopped server dropped after its lease TTL")
    gone = time.monotonic() - began
    assert gone > FAST["endpoint_ttl"] - FAST["endpoint_reconcile"] - 0.5
    wait_for(lambda: _apiaddresses(first, loop_thread) == [
        "127.0.0.20:6443"], what="k3s/apiaddresses without the closed one")


def test_expired_endpoint_lease_is_dropped(etcd_single, api_factory,
                                           loop_thread):
    api = api_factory(etcd_single.endpoints, timings=FAST)
    v1 = client.CoreV1Api(kube(api))

    async def crashed_server():  # a lease nobody refreshes any more
        lease = await api.etcd.lease_grant(FAST["endpoint_ttl"])
        await api.etcd.put("/registry/masterleases/127.0.0.99",
                           "127.0.0.99", lease)
    loop_thread.run(crashed_server())
    wait_for(lambda: "127.0.0.99" in _endpoint_ips(v1),
             what="crashed server listed")
    wait_for(lambda: _endpoint_ips(v1) == ["127.0.0.20"], timeout=20,
             what="crashed server dropped after its TTL")


def test_one_leader_and_failover(etcd_single, api_factory, loop_thread):
    first = api_factory(etcd_single.endpoints, "server-cp-0", FAST)
    second = api_factory(etcd_single.endpoints, "server-cp-1", FAST)

    def leaders() -> list[str]:
        return [api.ctx.node.name for api in (first, second)
                if not api.closed and api.apiserver.controllers.elections[
                    "kube-controller-manager"].leading]

    leader = wait_for(lambda: leaders(), what="a leader")
    assert len(leader) == 1
    closing = first if leader == ["server-cp-0"] else second
    loop_thread.run(closing.close())
    other = wait_for(lambda: leaders(), timeout=20, what="a new leader")
    assert other != leader
