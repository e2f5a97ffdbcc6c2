"""The kubelet's part that decides Ready: registration, lease, status.

Like the real kubelet it talks to the API over one persistent connection
(through the agent load balancer where the node has one) and dials again
only when that connection is closed or times out. Which server answers is
therefore decided by the load balancer, as on a real node.

Timings as in Kubernetes (docs/k3s-behaviour.md, "Timings"): each status
sync tries five times; every request has the heartbeat client's timeout
(``status_update_timeout``: min(nodeStatusUpdateFrequency, lease
duration), 10 s); from the second failed try of a sync on, the kubelet
closes its connections (onRepeatedHeartbeatFailure), so the next try
dials through the load balancer again.
"""

import asyncio
import base64
import hashlib
import json
import platform

import aiohttp

from chaosk3s.lab.k3s.context import SUPERVISOR_PORT, NodeContext
from chaosk3s.lab.k3s.objects import (
    NODE_LEASE_NAMESPACE,
    READY,
    condition,
    condition_body,
    lease_body,
    node_body,
    now_rfc3339,
    ready_condition,
)

STATUS_RETRIES = 5  # kubelet's nodeStatusUpdateRetry


class APIError(Exception):
    """An API call failed; the message is what the kubelet would log."""


class Kubelet:
    def __init__(self, ctx: NodeContext):
        self.ctx = ctx
        self.name = ctx.node.name
        self.log = ctx.log.getChild("kubelet")
        self._timeout = aiohttp.ClientTimeout(
            total=ctx.timings.status_update_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._ready_since = now_rfc3339()

    async def run(self) -> None:
        self._connect()
        try:
            registered = False
            while True:
                if not registered:
                    registered = await self._register()
                if registered:
                    await self._renew_lease()
                    await self._sync_status()
                await asyncio.sleep(self.ctx.timings.node_status_update)
        finally:
            await self._session.close()

    def _connect(self) -> None:
        """A client with one persistent connection, dialled when used."""
        connector = aiohttp.TCPConnector(limit=1, keepalive_timeout=3600)
        self._session = aiohttp.ClientSession(
            base_url=self.ctx.api_base, connector=connector,
            trust_env=False, timeout=self._timeout)

    async def _close_connections(self) -> None:
        """kubelet's onRepeatedHeartbeatFailure: drop the connection so
        the next try dials (through the load balancer) again."""
        old = self._session
        self._connect()
        await old.close()

    # -- API plumbing -----------------------------------------------------
    async def _call(self, method: str, path: str, body=None,
                    content_type: str = "application/json") -> dict | None:
        """One request; None for 404, APIError for anything else bad."""
        data = None if body is None else json.dumps(body)
        try:
            async with self._session.request(
                    method, path, data=data,
                    headers={"Content-Type": content_type}) as reply:
                payload = await reply.read()
                if reply.status == 404:
                    return None
                if reply.status >= 400:
                    raise APIError(_status_message(payload, reply.status))
                return json.loads(payload) if payload else {}
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise APIError(f"{type(exc).__name__}: {exc}") from None

    # -- registration -----------------------------------------------------
    async def _register(self) -> bool:
        try:
            await self._call("POST", "/api/v1/nodes", self._node_object())
        except APIError as exc:
            if "already exists" not in str(exc):
                self.log.warning('"Unable to register node with API server"'
                                 ' err="%s" node="%s"', exc, self.name)
                return False
        self.log.info('"Successfully registered node" node="%s"', self.name)
        return True

    def _node_object(self) -> dict:
        return node_body(self.name, node_labels(self.ctx),
                         node_annotations(self.ctx),
                         self._status(ready_changed=True))

    # -- lease --------------------------------------------------------------
    async def _renew_lease(self) -> None:
        path = (f"/apis/coordination.k8s.io/v1/namespaces/"
                f"{NODE_LEASE_NAMESPACE}/leases/{self.name}")
        duration = int(self.ctx.timings.node_monitor_grace)
        try:
            lease = await self._call("GET", path)
            if lease is None:
                lease = lease_body(self.name, duration,
                                   now_rfc3339(micro=True))
                await self._call("POST", path.rsplit("/", 1)[0], lease)
                return
            lease["spec"]["renewTime"] = now_rfc3339(micro=True)
            await self._call("PUT", path, lease)
        except APIError as exc:
            self.log.warning('"Failed to update lease" err="%s"', exc)

    # -- status -------------------------------------------------------------
    async def _sync_status(self) -> None:
        """kubelet's updateNodeStatus: five tries, then give up this tick."""
        for attempt in range(STATUS_RETRIES):
            try:
                await self._update_status_once()
                return
            except APIError as exc:
                if attempt > 0:
                    await self._close_connections()
                self.log.warning('"Error updating node status, will retry" '
                                 'err="error getting node \\"%s\\": %s"',
                                 self.name, exc)
        self.log.error('"Unable to update node status" '
                       'err="update node status exceeds retry count"')

    async def _update_status_once(self) -> None:
        node = await self._call("GET", f"/api/v1/nodes/{self.name}")
        if node is None:
            raise APIError(f'nodes "{self.name}" not found')
        ready = condition(node, READY)
        changed = ready is None or ready.get("status") != "True"
        status = self._status(ready_changed=changed)
        # Strategic merge keys addresses by type, which scrambles a dual-
        # stack node's two InternalIPs; the kubelet replaces the list
        # instead (kubernetes/kubernetes PR #79391). A lab node's
        # addresses never change after registering, so the patch omits
        # them.
        status.pop("addresses")
        await self._call("PATCH", f"/api/v1/nodes/{self.name}/status",
                         {"status": status},
                         "application/strategic-merge-patch+json")
        if changed:
            self.log.info('"Node became ready" node="%s"', self.name)

    def _status(self, ready_changed: bool) -> dict:
        now = now_rfc3339()
        if ready_changed:
            self._ready_since = now
        conditions = [
            condition_body("MemoryPressure", "False",
                           "KubeletHasSufficientMemory", now,
                           self._ready_since),
            condition_body("DiskPressure", "False",
                           "KubeletHasNoDiskPressure", now, self._ready_since),
            condition_body("PIDPressure", "False", "KubeletHasSufficientPID",
                           now, self._ready_since),
            ready_condition(now, self._ready_since),
        ]
        return {"conditions": conditions,
                "addresses": [
                    *({"type": "InternalIP", "address": address}
                      for address in self.ctx.node.addresses),
                    {"type": "Hostname", "address": self.name}],
                "capacity": {"cpu": "2", "memory": "2Gi", "pods": "110"},
                "allocatable": {"cpu": "2", "memory": "2Gi", "pods": "110"},
                "nodeInfo": _node_info(self.ctx)}


def _status_message(payload: bytes, code: int) -> str:
    try:
        return json.loads(payload).get("message") or f"HTTP {code}"
    except (ValueError, AttributeError):
        return payload.decode(errors="replace")[:200] or f"HTTP {code}"


def _node_info(ctx: NodeContext) -> dict:
    return {"kubeletVersion": ctx.release.version,
            "kubeProxyVersion": ctx.release.version,
            "containerRuntimeVersion": "containerd://1.7.22-k3s1",
            "osImage": "chaosk3s lab node", "kernelVersion": platform.release(),
            "operatingSystem": "linux", "architecture": "amd64",
            "machineID": ctx.node.name, "systemUUID": ctx.node.name,
            "bootID": ctx.node.name}


def node_labels(ctx: NodeContext) -> dict[str, str]:
    """The labels K3s puts on a node of this role (K3s server.go and etcd
    metadata controller: role labels)."""
    node = ctx.node
    labels = {"kubernetes.io/hostname": node.name,
              "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "beta.kubernetes.io/os": "linux",
              "beta.kubernetes.io/arch": "amd64",
              "node.kubernetes.io/instance-type": "k3s",
              "egress.k3s.io/cluster": "true"}
    if node.runs_apiserver:
        labels["node-role.kubernetes.io/control-plane"] = "true"
        labels["node-role.kubernetes.io/master"] = "true"
    if node.runs_etcd:
        labels["node-role.kubernetes.io/etcd"] = "true"
    return labels


def node_args(ctx: NodeContext) -> list[str]:
    """argv as K3s records it in k3s.io/node-args (secrets redacted)."""
    node = ctx.node
    args = ["agent"] if node.role == "agent" else ["server"]
    if node.role == "etcd":
        args += ["--disable-apiserver", "true",
                 "--disable-controller-manager", "true",
                 "--disable-scheduler", "true"]
    if node.role == "control-plane":
        args += ["--disable-etcd", "true"]
    if node.server is None:
        args += ["--cluster-init", "true"]
    else:
        join = ctx.spec.node(node.server).address
        args += ["--server", f"https://{join}:{SUPERVISOR_PORT}"]
    return args + ["--token", "********"]


def node_annotations(ctx: NodeContext) -> dict[str, str]:
    node = ctx.node
    args, env = json.dumps(node_args(ctx)), "{}"
    digest = hashlib.sha256((args + env).encode()).digest()
    annotations = {
        "k3s.io/node-args": args,
        "k3s.io/node-env": env,
        "k3s.io/node-config-hash": base64.b32encode(digest).decode(),
        # dual stack: both families, as K3s writes it
        "k3s.io/internal-ip": ",".join(node.addresses),
        "k3s.io/hostname": node.name,
    }
    if node.runs_etcd:
        # K3s persists a random member suffix; a stable one serves the lab.
        suffix = hashlib.sha256(node.name.encode()).hexdigest()[:8]
        annotations["etcd.k3s.cattle.io/node-name"] = f"{node.name}-{suffix}"
        annotations["etcd.k3s.cattle.io/node-address"] = node.address
    return annotations
