"""The emulated API server over real HTTP and real etcd, exercised with
the official kubernetes client and kubectl."""

import base64
import json
import subprocess
import threading

import pytest
import requests
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.unit.conftest import KUBECTL, wait_for, write_kubeconfig

_http = requests.Session()
_http.trust_env = False


def kube(api) -> client.ApiClient:
    config = client.Configuration()
    config.host = api.url
    config.proxy = None
    return client.ApiClient(config)


def node_body(name: str, labels: dict | None = None,
              ready: str = "True") -> dict:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "status": {
            "conditions": [
                {"type": "Ready", "status": ready, "reason": "KubeletReady",
                 "message": "kubelet is posting ready status",
                 "lastHeartbeatTime": "2024-11-12T00:00:00Z",
                 "lastTransitionTime": "2024-11-12T00:00:00Z"},
                {"type": "MemoryPressure", "status": "False",
                 "lastHeartbeatTime": "2024-11-12T00:00:00Z",
                 "lastTransitionTime": "2024-11-12T00:00:00Z"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.5"},
                          {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": "v1.28.15+k3s-2d0661e3",
                         "kubeProxyVersion": "v1.28.15+k3s-2d0661e3",
                         "osImage": "chaosk3s lab",
                         "kernelVersion": "6.1.0", "architecture": "amd64",
                         "operatingSystem": "linux", "bootID": "b",
                         "machineID": "m", "systemUUID": "u",
                         "containerRuntimeVersion": "none://0"}}}


def test_discovery_version_and_health(api):
    version = _http.get(api.url + "/version", timeout=5).json()
    assert version["gitVersion"] == "v1.28.15+k3s-2d0661e3"
    assert version["minor"] == "28"
    for path in ("/healthz", "/readyz", "/livez"):
        reply = _http.get(api.url + path, timeout=5)
        assert (reply.status_code, reply.text) == (200, "ok")
    core = _http.get(api.url + "/api/v1", timeout=5).json()
    names = {r["name"] for r in core["resources"]}
    assert {"nodes", "nodes/status", "namespaces", "endpoints",
            "events"} <= names
    groups = _http.get(api.url + "/apis", timeout=5).json()
    assert [g["name"] for g in groups["groups"]] == ["coordination.k8s.io"]
    leases = _http.get(api.url + "/apis/coordination.k8s.io/v1",
                       timeout=5).json()
    assert leases["resources"][0]["name"] == "leases"
    missing = _http.get(api.url + "/openapi/v2", timeout=5)
    assert missing.status_code == 404
    assert missing.json()["reason"] == "NotFound"


def test_initial_namespaces(api):
    v1 = client.CoreV1Api(kube(api))
    names = {ns.metadata.name for ns in v1.list_namespace().items}
    assert names == {"default", "kube-system", "kube-public",
                     "kube-node-lease"}
    assert v1.read_namespace("kube-node-lease").status.phase == "Active"


def test_node_crud_and_conflicts(api):
    v1 = client.CoreV1Api(kube(api))
    created = v1.create_node(node_body("agent-0"))
    assert created.metadata.uid and created.metadata.creation_timestamp
    rv = created.metadata.resource_version
    with pytest.raises(ApiException) as exists:
        v1.create_node(node_body("agent-0"))
    assert exists.value.status == 409
    assert '"reason":"AlreadyExists"' in exists.value.body.replace(" ", "")
    fetched = v1.read_node("agent-0")
    assert fetched.metadata.resource_version == rv
    fetched.metadata.labels = {"team": "a"}
    updated = v1.replace_node("agent-0", fetched)
    assert int(updated.metadata.resource_version) > int(rv)
    fetched.metadata.labels = {"team": "b"}
    with pytest.raises(ApiException) as stale:
        v1.replace_node("agent-0", fetched)  # still carries the old rv
    assert stale.value.status == 409
    assert "Conflict" in stale.value.body
    v1.delete_node("agent-0")
    with pytest.raises(ApiException) as gone:
        v1.read_node("agent-0")
    assert gone.value.status == 404
    assert 'nodes \\"agent-0\\" not found' in gone.value.body or \
        'nodes "agent-0" not found' in gone.value.body


def test_list_selectors(api):
    v1 = client.CoreV1Api(kube(api))
    v1.create_node(node_body("a", {"role": "etcd", "zone": "x"}))
    v1.create_node(node_body("b", {"role": "agent"}))
    v1.create_node(node_body("c", {"role": "control-plane", "zone": "y"}))

    def names(**kwargs) -> list[str]:
        return sorted(n.metadata.name for n in v1.list_node(**kwargs).items)

    assert names() == ["a", "b", "c"]
    assert names(label_selector="role=etcd") == ["a"]
    assert names(label_selector="role==agent") == ["b"]
    assert names(label_selector="role!=agent") == ["a", "c"]
    assert names(label_selector="zone") == ["a", "c"]
    assert names(label_selector="!zone") == ["b"]
    assert names(label_selector="role in (etcd,agent)") == ["a", "b"]
    assert names(label_selector="role notin (etcd, agent),zone") == ["c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b") == ["a", "c"]
    listed = v1.list_node()
    assert int(listed.metadata.resource_version) >= max(
        int(n.metadata.resource_version) for n in listed.items)
    with pytest.raises(ApiException) as bad:
        v1.list_node(label_selector="role in (a")
    assert bad.value.status == 400


def test_lists_see_every_write_at_once(etcd_single, api_factory):
    """Lists come from a cache: writes through another API server and
    straight into etcd (as virtual nodes make them) must show at once."""
    reader = api_factory(etcd_single.endpoints)
    writer = api_factory(etcd_single.endpoints, node="server-cp-1")
    etcd = etcd_single.endpoints[0]
    table = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}

    def listed() -> tuple[dict, dict]:
        items = _http.get(reader.url + "/api/v1/nodes", timeout=10).json()
        rows = _http.get(reader.url + "/api/v1/nodes?includeObject=None",
                         headers=table, timeout=10).json()["rows"]
        return ({n["metadata"]["name"]: n for n in items["items"]},
                {r["cells"][0]: r["cells"][1] for r in rows})

    def etcd_put(name: str, ready: str) -> int:
        key = base64.b64encode(f"/registry/minions/{name}".encode())
        value = base64.b64encode(json.dumps(node_body(name, ready=ready))
                                 .encode())
        reply = _http.post(etcd + "/v3/kv/put", timeout=10, json={
            "key": key.decode(), "value": value.decode()}).json()
        return int(reply["header"]["revision"])

    for name in ("a", "b"):
        _http.post(writer.url + "/api/v1/nodes", json=node_body(name),
                   timeout=10).raise_for_status()
    assert listed()[1] == {"a": "Ready", "b": "Ready"}
    _http.patch(writer.url + "/api/v1/nodes/b/status", timeout=10,
                headers={"Content-Type": "application/merge-patch+json"},
                json={"status": {"conditions": [
                    {"type": "Ready", "status": "False"}]}}
                ).raise_for_status()
    _http.delete(writer.url + "/api/v1/nodes/a", timeout=10
                 ).raise_for_status()
    put_at = etcd_put("c", "Unknown")
    items, rows = listed()
    assert rows == {"b": "NotReady", "c": "NotReady"}
    assert items["c"]["metadata"]["resourceVersion"] == str(put_at)
    stored = _http.get(writer.url + "/api/v1/nodes/b", timeout=10).json()
    assert items["b"] == stored
    # One key gone and one new: the count alone would not tell.
    _http.delete(writer.url + "/api/v1/nodes/c", timeout=10
                 ).raise_for_status()
    etcd_put("d", "True")
    assert listed()[1] == {"b": "NotReady", "d": "Ready"}


def test_strategic_merge_patch_of_status(api):
    v1 = client.CoreV1Api(kube(api))
    v1.create_node(node_body("agent-1"))
    patch = {"status": {
        "$setElementOrder/conditions": [{"type": "Ready"},
                                        {"type": "MemoryPressure"},
                                        {"type": "DiskPressure"}],
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "Test"},
            {"type": "DiskPressure", "status": "False"}]}}
    reply = _http.patch(
        api.url + "/api/v1/nodes/agent-1/status", json=patch, timeout=5,
        headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert reply.status_code == 200, reply.text
    conditions = {c["type"]: c for c in reply.json()["status"]["conditions"]}
    assert set(conditions) == {"Ready", "MemoryPressure", "DiskPressure"}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["message"] == "kubelet is posting ready status"
    # The main resource ignores status; /status ignores everything else.
    v1.patch_node("agent-1", {"metadata": {"labels": {"x": "1"}},
                              "status": {"phase": "Gone"}})
    v1.patch_node_status("agent-1", {"metadata": {"labels": {"x": "2"}},
                                     "status": {"phase": "Running"}})
    node = v1.read_node("agent-1")
    assert node.metadata.labels == {"x": "1"}
    assert node.status.phase == "Running"
    assert v1.read_node_status("agent-1").metadata.name == "agent-1"


def test_taints_merge_by_key_and_effect(api):
    v1 = client.CoreV1Api(kube(api))
    v1.create_node(node_body("agent-2"))
    smp = {"Content-Type": "application/strategic-merge-patch+json"}
    url = api.url + "/api/v1/nodes/agent-2"
    for body in ({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}},
                 {"spec": {"taints": [{"key": "k", "effect": "NoExecute"}]}},
                 {"spec": {"taints": [{"key": "k", "effect": "NoSchedule",
                                       "value": "v"}]}}):
        assert _http.patch(url, json=body, headers=smp, timeout=5).ok
    taints = v1.read_node("agent-2").spec.taints
    assert [(t.key, t.effect, t.value) for t in taints] == [
        ("k", "NoSchedule", "v"), ("k", "NoExecute", None)]
    delete = {"spec": {"taints": [{"key": "k", "effect": "NoSchedule",
                                   "$patch": "delete"}]}}
    assert _http.patch(url, json=delete, headers=smp, timeout=5).ok
    assert len(v1.read_node("agent-2").spec.taints) == 1


def test_json_patch_and_merge_patch(api):
    v1 = client.CoreV1Api(kube(api))
    v1.create_node(node_body("agent-3", {"a": "1", "b": "2"}))
    url = api.url + "/api/v1/nodes/agent-3"
    ops = [{"op": "add", "path": "/spec/unschedulable", "value": True},
           {"op": "remove", "path": "/metadata/labels/a"},
           {"op": "test", "path": "/metadata/labels/b", "value": "2"}]
    reply = _http.patch(url, json=ops, timeout=5, headers={
        "Content-Type": "application/json-patch+json"})
    assert reply.status_code == 200, reply.text
    merge = {"metadata": {"labels": {"b": None, "c": "3"}}}
    reply = _http.patch(url, json=merge, timeout=5, headers={
        "Content-Type": "application/merge-patch+json"})
    node = reply.json()
    assert node["metadata"]["labels"] == {"c": "3"}
    assert node["spec"]["unschedulable"] is True
    failing = [{"op": "test", "path": "/metadata/labels/c", "value": "9"}]
    reply = _http.patch(url, json=failing, timeout=5, headers={
        "Content-Type": "application/json-patch+json"})
    assert reply.status_code == 422
    stale = {"metadata": {"resourceVersion": "1", "labels": {"d": "4"}}}
    reply = _http.patch(url, json=stale, timeout=5, headers={
        "Content-Type": "application/merge-patch+json"})
    assert (reply.status_code, reply.json()["reason"]) == (409, "Conflict")


def test_error_statuses(api):
    bad = _http.post(api.url + "/api/v1/nodes", data="{not json",
                     headers={"Content-Type": "application/json"}, timeout=5)
    assert (bad.status_code, bad.json()["reason"]) == (400, "BadRequest")
    assert bad.json()["kind"] == "Status"
    method = _http.post(api.url + "/api/v1/nodes/x", json={}, timeout=5)
    assert (method.status_code, method.json()["reason"]) == (
        405, "MethodNotAllowed")
    missing = _http.get(api.url + "/api/v1/secrets", timeout=5)
    assert missing.status_code == 404


def test_node_watch_from_resource_version(api):
    v1 = client.CoreV1Api(kube(api))
    start = v1.list_node().metadata.resource_version
    seen: list[tuple[str, str]] = []

    def consume():
        stream = watch.Watch().stream(
            v1.list_node, resource_version=start, timeout_seconds=10,
            allow_watch_bookmarks=True, label_selector="watched=yes")
        for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 4:
                return

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    v1.create_node(node_body("w1", {"watched": "yes"}))
    v1.create_node(node_body("ignored"))
    v1.patch_node("w1", {"metadata": {"annotations": {"a": "b"}}})
    v1.patch_node("w1", {"metadata": {"labels": {"watched": "no"}}})
    v1.patch_node("ignored", {"metadata": {"labels": {"watched": "yes"}}})
    reader.join(timeout=15)
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1"),
                    ("ADDED", "ignored")]


def test_watch_without_resource_version_lists_first(api):
    v1 = client.CoreV1Api(kube(api))
    v1.create_node(node_body("existing"))
    reply = _http.get(api.url + "/api/v1/nodes?watch=1&timeoutSeconds=1",
                      stream=True, timeout=10)
    lines = [line for line in reply.iter_lines() if line]
    assert len(lines) == 1 and b'"ADDED"' in lines[0]
    assert b'"existing"' in lines[0]


def test_watch_after_delete_and_timeout(api):
    v1 = client.CoreV1Api(kube(api))
    v1.create_node(node_body("doomed"))
    rv = v1.list_node().metadata.resource_version
    v1.delete_node("doomed")
    reply = _http.get(
        api.url + f"/api/v1/watch/nodes?resourceVersion={rv}"
        "&timeoutSeconds=2", stream=True, timeout=10)
    lines = [line for line in reply.iter_lines() if line]
    assert len(lines) == 1 and b'"DELETED"' in lines[0]


def test_leases_in_kube_node_lease(api):
    coord = client.CoordinationV1Api(kube(api))
    body = {"metadata": {"name": "agent-0"},
            "spec": {"holderIdentity": "agent-0",
                     "leaseDurationSeconds": 40,
                     "renewTime": "2024-11-12T00:00:00.000000Z"}}
    created = coord.create_namespaced_lease("kube-node-lease", body)
    assert created.metadata.namespace == "kube-node-lease"
    lease = coord.read_namespaced_lease("agent-0", "kube-node-lease")
    lease.spec.lease_duration_seconds = 41
    renewed = coord.replace_namespaced_lease("agent-0", "kube-node-lease",
                                             lease)
    assert renewed.spec.lease_duration_seconds == 41
    with pytest.raises(ApiException) as stale:
        coord.replace_namespaced_lease("agent-0", "kube-node-lease", lease)
    assert stale.value.status == 409
    everywhere = coord.list_lease_for_all_namespaces()
    assert [x.metadata.name for x in everywhere.items] == ["agent-0"]
    assert coord.list_namespaced_lease("default").items == []
    rv = everywhere.metadata.resource_version
    coord.delete_namespaced_lease("agent-0", "kube-node-lease")
    events = list(watch.Watch().stream(
        coord.list_namespaced_lease, "kube-node-lease", resource_version=rv,
        timeout_seconds=2))
    assert [e["type"] for e in events] == ["DELETED"]


def test_events_namespaced_and_all(api):
    v1 = client.CoreV1Api(kube(api))
    for namespace in ("default", "kube-system"):
        v1.create_namespaced_event(namespace, {
            "metadata": {"name": f"e.{namespace}"},
            "involvedObject": {"kind": "Node", "name": "agent-0"},
            "reason": "NodeNotReady", "type": "Normal"})
    assert [e.metadata.name for e in
            v1.list_namespaced_event("default").items] == ["e.default"]
    assert len(v1.list_event_for_all_namespaces().items) == 2
    ready = v1.list_event_for_all_namespaces(
        field_selector="involvedObject.name=agent-0,reason=NodeNotReady")
    assert len(ready.items) == 2


def test_kubernetes_endpoints_by_field_selector(api):
    v1 = client.CoreV1Api(kube(api))
    endpoints = wait_for(lambda: v1.list_namespaced_endpoints(
        "default", field_selector="metadata.name=kubernetes").items,
        what="kubernetes endpoints")
    subset = endpoints[0].subsets[0]
    assert [a.ip for a in subset.addresses] == ["127.0.0.20"]
    assert [(p.name, p.port, p.protocol) for p in subset.ports] == [
        ("https", 6443, "TCP")]
    one = v1.read_namespaced_endpoints("kubernetes", "default")
    assert one.metadata.name == "kubernetes"


def test_kubectl_get_nodes_wide(api, tmp_path):
    v1 = client.CoreV1Api(kube(api))
    v1.create_node(node_body("server-etcd-0", {
        "node-role.kubernetes.io/etcd": "true"}))
    v1.create_node(node_body("server-cp-0", {
        "node-role.kubernetes.io/control-plane": "true",
        "node-role.kubernetes.io/master": "true"}))
    v1.create_node(node_body("agent-0", ready="Unknown"))
    v1.create_node(node_body("agent-1"))
    v1.patch_node("agent-1", {"spec": {"unschedulable": True}})
    config = write_kubeconfig(tmp_path / "kubeconfig", api.url)
    out = subprocess.run(
        [KUBECTL, "--kubeconfig", str(config), "get", "nodes", "-o", "wide"],
        check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split() for line in
            out.stdout.splitlines()[1:]}
    header = out.stdout.splitlines()[0].split()
    assert header[:7] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION",
                          "INTERNAL-IP", "EXTERNAL-IP"]
    assert rows["server-etcd-0"][1:3] == ["Ready", "etcd"]
    assert rows["server-cp-0"][1:3] == ["Ready", "control-plane,master"]
    assert rows["agent-0"][1:3] == ["NotReady", "<none>"]
    assert rows["agent-1"][1] == "Ready,SchedulingDisabled"
    assert rows["agent-1"][4:7] == ["v1.28.15+k3s-2d0661e3", "10.0.0.5",
                                    "<none>"]
    plain = subprocess.run(
        [KUBECTL, "--kubeconfig", str(config), "get", "node", "agent-0"],
        check=False, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.split()[:5] == ["NAME", "STATUS", "ROLES", "AGE",
                                        "VERSION"]
