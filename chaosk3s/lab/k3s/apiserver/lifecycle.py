"""The node lifecycle controller (kube-controller-manager's), run by the
leader among control-plane nodes (see controllers.Controllers).

Silence is measured on this controller's own monotonic clock: it records
when it last saw a node's lease renewTime or Ready heartbeat *change*, so
a freshly elected leader gives every node a full grace period.

It also keeps the node.kubernetes.io/unschedulable NoSchedule taint in
line with spec.unschedulable, as kube-controller-manager's
doNoScheduleTaintingPass does (there on every node update; here at the
next monitor period, node_monitor_period).
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chaosk3s.lab.k3s.apiserver.resources import (
    EVENTS,
    LEASES,
    NODES,
    ApiError,
)
from chaosk3s.lab.k3s.apiserver.store import Store
from chaosk3s.lab.k3s.context import NodeContext
from chaosk3s.lab.k3s.etcdclient import EtcdError
from chaosk3s.lab.k3s.objects import (
    NODE_LEASE_NAMESPACE,
    READY,
    condition,
    now_rfc3339,
    ready_status,
)

STOPPED = "Kubelet stopped posting node status."
NEVER = "Kubelet never posted node status."
WATCHED_CONDITIONS = (READY, "MemoryPressure", "DiskPressure",
                      "PIDPressure")
UNREACHABLE = "node.kubernetes.io/unreachable"
UNREACHABLE_EFFECTS = ("NoSchedule", "NoExecute")
# kube-controller-manager's doNoScheduleTaintingPass (node lifecycle
# controller): a node whose spec.unschedulable is true (a cordon) gets
# this NoSchedule taint, which goes when the node is schedulable again.
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"


@dataclass
class Observation:
    heartbeat: tuple  # (lease renewTime, Ready lastHeartbeatTime)
    seen: float  # monotonic time the heartbeat last changed


def _heartbeat(node: dict, renew: str | None) -> tuple:
    ready = condition(node, READY) or {}
    return renew, ready.get("lastHeartbeatTime")


def has_unreachable_taints(node: dict) -> bool:
    taints = {(t.get("key"), t.get("effect"))
              for t in node.get("spec", {}).get("taints") or []}
    return all((UNREACHABLE, e) in taints for e in UNREACHABLE_EFFECTS)


def mark_unknown(node: dict) -> dict:
    """Every watched condition to Unknown (the heartbeat is kept)."""
    stamp = now_rfc3339()
    conditions = node.setdefault("status", {}).setdefault("conditions", [])
    for kind in WATCHED_CONDITIONS:
        current = next((c for c in conditions if c.get("type") == kind),
                       None)
        if current is None:
            conditions.append({
                "type": kind, "status": "Unknown",
                "reason": "NodeStatusNeverUpdated", "message": NEVER,
                "lastHeartbeatTime": stamp, "lastTransitionTime": stamp})
            continue
        if current.get("status") != "Unknown":
            current["lastTransitionTime"] = stamp
        current.update(status="Unknown", reason="NodeStatusUnknown",
                       message=STOPPED)
    return node


def add_unreachable_taints(node: dict) -> dict:
    taints = node.setdefault("spec", {}).setdefault("taints", [])
    for effect in UNREACHABLE_EFFECTS:
        if not any(t.get("key") == UNREACHABLE and t.get("effect") == effect
                   for t in taints):
            taints.append({"key": UNREACHABLE, "effect": effect,
                           "timeAdded": now_rfc3339()})
    return node


def remove_unreachable_taints(node: dict) -> dict:
    spec = node.setdefault("spec", {})
    spec["taints"] = [t for t in spec.get("taints") or []
                      if t.get("key") != UNREACHABLE]
    if not spec["taints"]:
        del spec["taints"]
    return node


def cordoned(node: dict) -> bool:
    return bool(node.get("spec", {}).get("unschedulable"))


def has_unschedulable_taint(node: dict) -> bool:
    return any(t.get("key") == UNSCHEDULABLE
               for t in node.get("spec", {}).get("taints") or [])


def sync_unschedulable_taint(node: dict) -> dict:
    """The taint in line with spec.unschedulable (read again inside the
    store's mutate, so a cordon or uncordon in between is honoured)."""
    spec = node.setdefault("spec", {})
    taints = spec.get("taints") or []
    others = [t for t in taints if t.get("key") != UNSCHEDULABLE]
    if cordoned(node):
        others.append(next((t for t in taints
                            if t.get("key") == UNSCHEDULABLE),
                           {"key": UNSCHEDULABLE, "effect": "NoSchedule",
                            "timeAdded": now_rfc3339()}))
    if others:
        spec["taints"] = others
    else:
        spec.pop("taints", None)
    return node


async def every(period: float, step: Callable[[], Awaitable[None]],
                log: logging.Logger, what: str) -> None:
    """A controller's loop: step, then wait period, for ever; a storage or
    API failure is logged and the next step tries again."""
    while True:
        try:
            await step()
        except (ApiError, EtcdError) as exc:
            log.warning("%s: %s", what, exc)
        await asyncio.sleep(period)


class NodeLifecycle:
    def __init__(self, ctx: NodeContext, store: Store):
        self.ctx, self.store = ctx, store
        self.observed: dict[str, Observation] = {}

    async def lead(self) -> None:
        """Runs while leading; observations start afresh each term."""
        self.observed = {}
        await every(self.ctx.timings.node_monitor_period, self.monitor,
                    self.ctx.log, "node lifecycle")

    async def monitor(self) -> None:
        nodes, _rev = await self.store.list(NODES, None)
        leases, _rev = await self.store.list(LEASES, NODE_LEASE_NAMESPACE)
        renewals = {lease["metadata"]["name"]:
                    lease.get("spec", {}).get("renewTime")
                    for lease in leases}
        names = {node["metadata"]["name"] for node in nodes}
        for gone in set(self.observed) - names:
            del self.observed[gone]
        for node in nodes:
            name = node["metadata"]["name"]
            await self.check(node, renewals.get(name))

    async def check(self, node: dict, renew: str | None) -> None:
        name, now = node["metadata"]["name"], time.monotonic()
        if cordoned(node) != has_unschedulable_taint(node):
            await self.store.mutate(NODES, None, name,
                                    sync_unschedulable_taint)
        beat = _heartbeat(node, renew)
        seen = self.observed.get(name)
        if seen is None or seen.heartbeat != beat:
            seen = self.observed[name] = Observation(beat, now)
        status = ready_status(node)
        if now - seen.seen > self.ctx.timings.node_monitor_grace:
            if status != "Unknown":
                await self._set_unknown(name)
            elif not has_unreachable_taints(node):
                await self.store.mutate(NODES, None, name,
                                        add_unreachable_taints)
        elif status == "True" and any(
                t.get("key") == UNREACHABLE
                for t in node.get("spec", {}).get("taints") or []):
            await self.store.mutate(NODES, None, name,
                                    remove_unreachable_taints)
            await self._event(node, "NodeReady")

    async def _set_unknown(self, name: str) -> None:
        node = await self.store.mutate(NODES, None, name, mark_unknown,
                                       "status")
        await self.store.mutate(NODES, None, name, add_unreachable_taints)
        self.ctx.log.info("node %s: %s", name, STOPPED)
        await self._event(node, "NodeNotReady")

    async def _event(self, node: dict, reason: str) -> None:
        meta, stamp = node["metadata"], now_rfc3339()
        await self.store.create(EVENTS, "default", {
            "metadata": {"name": f"{meta['name']}.{time.time_ns():x}"},
            "involvedObject": {"kind": "Node", "apiVersion": "v1",
                               "name": meta["name"], "uid": meta.get("uid")},
            "reason": reason, "type": "Normal",
            "message": f"Node {meta['name']} status is now: {reason}",
            "source": {"component": "node-controller"},
            "reportingComponent": "node-controller",
            "reportingInstance": self.ctx.node.name,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1})
