"""Control-plane controllers, started and stopped by APIServer.

- EndpointReconciler (every API server): Kubernetes' lease endpoint
  reconciler for the ``default/kubernetes`` Endpoints: each server keeps
  its address under an etcd lease of ``endpoint_ttl`` refreshed every
  ``endpoint_reconcile``; a stopped server's lease expires.
- ApiAddresses (leader-elected, "k3s-etcd"): mirrors those Endpoints into
  the etcd key ``k3s/apiaddresses`` for etcd-only servers.
- NodeLifecycle (leader-elected, "kube-controller-manager"): marks nodes
  whose kubelet went silent Unknown and taints them unreachable.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from chaosk3s.lab.k3s.apiserver.lifecycle import NodeLifecycle, every
from chaosk3s.lab.k3s.apiserver.resources import ENDPOINTS, ApiError
from chaosk3s.lab.k3s.apiserver.store import Store
from chaosk3s.lab.k3s.context import SUPERVISOR_PORT, NodeContext
from chaosk3s.lab.k3s.etcdclient import EtcdClient, EtcdError, KeyExists

MASTER_LEASES = "/registry/masterleases/"  # as kube-apiserver keeps them
LEADER_PREFIX = "chaosk3s/leader/"
APIADDRESSES_KEY = "k3s/apiaddresses"
ENDPOINTS_KEY = ENDPOINTS.key("default", "kubernetes")
HTTPS_PORTS = [{"name": "https", "port": SUPERVISOR_PORT, "protocol": "TCP"}]


class LeaderElection:
    """Leads while it holds an etcd key under a lease of TTL ttl.

    A leader that cannot refresh its lease (partitioned, no quorum) stops
    leading at once; its key expires and another candidate takes over.
    """

    def __init__(self, etcd: EtcdClient, name: str, identity: str,
                 ttl: float, retry: float, log: logging.Logger):
        self.etcd, self.name, self.identity = etcd, name, identity
        self.ttl, self.retry, self.log = ttl, retry, log
        self.leading = False

    async def run(self, body: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                lease = await self.etcd.lease_grant(self.ttl)
                try:
                    await self.etcd.create(LEADER_PREFIX + self.name,
                                           self.identity, lease)
                except KeyExists:
                    await self.etcd.lease_revoke(lease)
                else:
                    await self._lead(lease, body)
            except EtcdError as exc:
                self.log.warning("leader election %s: %s", self.name, exc)
            await asyncio.sleep(self.retry)

    async def _lead(self, lease: int, body: Callable[[], Awaitable[None]]
                    ) -> None:
        self.log.info("%s became leader of %s", self.identity, self.name)
        self.leading = True
        task = asyncio.create_task(body())
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=self.retry)
                if not task.done() and \
                        await self.etcd.lease_keepalive(lease) <= 0:
                    break
        finally:
            self.leading = False
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            self.log.info("%s stopped leading %s", self.identity, self.name)
            with contextlib.suppress(EtcdError):
                await self.etcd.lease_revoke(lease)


def endpoints_object(ips: list[str]) -> dict:
    subsets = [{"addresses": [{"ip": ip} for ip in ips],
                "ports": HTTPS_PORTS}] if ips else []
    return {"kind": "Endpoints", "apiVersion": "v1",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {
                             "endpointslice.kubernetes.io/skip-mirror":
                             "true"}},
            "subsets": subsets}


def endpoint_ips(endpoints: dict | None) -> list[str]:
    return sorted(a["ip"] for s in (endpoints or {}).get("subsets") or []
                  for a in s.get("addresses") or [])


class EndpointReconciler:
    """Keeps this server's address under a lease and the Endpoints in
    line with the set of live leases."""

    def __init__(self, ctx: NodeContext, etcd: EtcdClient, store: Store):
        self.ctx, self.etcd, self.store = ctx, etcd, store
        self.key = MASTER_LEASES + ctx.node.address
        self.lease = 0

    async def run(self) -> None:
        await every(self.ctx.timings.endpoint_reconcile, self.reconcile,
                    self.ctx.log, "endpoint reconciler")

    async def reconcile(self) -> None:
        if self.lease and await self.etcd.lease_keepalive(self.lease) <= 0:
            self.lease = 0  # expired while we were cut off
        fresh = not self.lease
        if fresh:
            self.lease = await self.etcd.lease_grant(
                self.ctx.timings.endpoint_ttl)
        ips = await self._live_ips()
        if fresh or self.ctx.node.address not in ips:
            await self.etcd.put(self.key, self.ctx.node.address, self.lease)
            ips = sorted({*ips, self.ctx.node.address})
        await self.sync(ips)

    async def _live_ips(self) -> list[str]:
        kvs, _rev = await self.etcd.range_prefix(MASTER_LEASES)
        return sorted(kv.value.decode() for kv in kvs)

    async def sync(self, ips: list[str]) -> None:
        """Rewrite the Endpoints only when the address set changed."""
        try:
            current = await self.store.get(ENDPOINTS, "default", "kubernetes")
        except ApiError as exc:
            if exc.code != 404:
                raise
            await self.store.create(ENDPOINTS, "default",
                                    endpoints_object(ips))
            return
        if endpoint_ips(current) == ips:
            return
        wanted = endpoints_object(ips)
        wanted["metadata"] = current["metadata"]
        await self.store.update(ENDPOINTS, "default", "kubernetes", wanted)
        self.ctx.log.info("kubernetes endpoints now %s", ips)

class ApiAddresses:
    """Writes the Endpoints' addresses to k3s/apiaddresses on change."""

    def __init__(self, ctx: NodeContext, etcd: EtcdClient):
        self.ctx, self.etcd = ctx, etcd

    async def lead(self) -> None:
        await every(self.ctx.timings.endpoint_reconcile, self._follow,
                    self.ctx.log, "apiaddresses")

    async def _follow(self) -> None:
        # One read gives both the value and its revision, so no change
        # can slip in between the read and the watch.
        kvs, revision = await self.etcd.range_prefix(ENDPOINTS_KEY)
        kv = next((kv for kv in kvs if kv.key == ENDPOINTS_KEY), None)
        await self._mirror(json.loads(kv.value) if kv else None)
        events = self.etcd.watch(ENDPOINTS_KEY, revision + 1)
        try:
            async for event in events:
                if event.kv.key != ENDPOINTS_KEY:
                    continue
                await self._mirror(None if event.type == "DELETE"
                                   else json.loads(event.kv.value))
        finally:
            await events.aclose()

    async def _mirror(self, endpoints: dict | None) -> None:
        ips = endpoint_ips(endpoints)
        if not ips:
            return  # like K3s: an empty list would strand etcd-only nodes
        value = json.dumps([f"{ip}:{SUPERVISOR_PORT}" for ip in ips])
        current = await self.etcd.get(APIADDRESSES_KEY)
        if current is None or current.value.decode() != value:
            await self.etcd.put(APIADDRESSES_KEY, value)
            self.ctx.log.info("k3s/apiaddresses now %s", value)


class Controllers:
    """Everything a control-plane node runs beside the API itself."""

    def __init__(self, ctx: NodeContext, etcd: EtcdClient, store: Store):
        self.ctx = ctx
        timings, name = ctx.timings, ctx.node.name
        self.reconciler = EndpointReconciler(ctx, etcd, store)
        self.lifecycle = NodeLifecycle(ctx, store)
        self.apiaddresses = ApiAddresses(ctx, etcd)
        self.elections = {
            lock: LeaderElection(etcd, lock, name, timings.endpoint_ttl,
                                 timings.endpoint_reconcile, ctx.log)
            for lock in ("kube-controller-manager", "k3s-etcd")}
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.reconciler.run()),
            asyncio.create_task(self.elections[
                "kube-controller-manager"].run(self.lifecycle.lead)),
            asyncio.create_task(self.elections["k3s-etcd"].run(
                self.apiaddresses.lead)),
        ]

    async def close(self) -> None:
        """Stops the controllers. This server's endpoint lease is left to
        expire (endpoint_ttl), so the other API servers drop it from the
        Endpoints at their next reconcile: the record points to K3s not
        removing it on stop (docs/k3s-behaviour.md, "Endpoint removal")."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
