"""The API's own record of the nodes' readiness during a run: the
NodeNotReady and NodeReady Events, for the journal's `node_events`.

Kubernetes' node lifecycle controller records NodeNotReady when it marks
a silent node's Ready condition Unknown, and the kubelet records
NodeReady / NodeNotReady when it reports its own status; Events about a
cluster-scoped object such as a Node are kept in the `default` namespace.
The lab's API server records the controller's as Kubernetes does. Events
expire (one hour by default), so they are read when the run ends.

Best effort: the API may be unreachable at the end of a run (a partition
of the control plane that never healed); then `node_events` is None
("could not be read", `node_events_error` says why), never an empty list
that would say "none". One bounded read (chaosk3s.kube.call_within: one
try per API server, no retries, BOUNDED_SECONDS in all).
"""

from __future__ import annotations

from datetime import datetime

from chaosk3s.kube import BOUNDED_SECONDS, Kube

NAMESPACE = "default"
REASONS = ("NodeNotReady", "NodeReady")
MAX_EVENTS = 500  # per run: a flapping cluster must not bloat the journal


def _parse(moment: object) -> datetime | None:
    if not isinstance(moment, str) or not moment:
        return None
    try:
        return datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return None


def _event(item: dict) -> dict | None:
    if item.get("reason") not in REASONS:
        return None
    involved = item.get("involvedObject") or {}
    at = (item.get("lastTimestamp") or item.get("eventTime")
          or item.get("firstTimestamp"))
    source = item.get("source") or {}
    return {"node": str(involved.get("name", "")),
            "reason": item["reason"], "at": at,
            "count": item.get("count") or 1,
            "source": source.get("component")
            or item.get("reportingComponent") or "",
            "message": str(item.get("message", ""))[:300]}


def read_node_events(kube: Kube, start: datetime, end: datetime,
                     seconds: float = BOUNDED_SECONDS) -> list[dict]:
    """The node readiness Events whose time falls in [start, end], oldest
    first, at most MAX_EVENTS, read within `seconds`; KubeError if the
    API did not give them."""
    listing = kube.call_within("list_namespaced_event", seconds,
                               namespace=NAMESPACE,
                               field_selector="involvedObject.kind=Node")
    found = []
    for item in listing.get("items") or []:
        event = _event(item)
        at = _parse(event["at"]) if event else None
        if at is not None and start <= at <= end:
            found.append((at, event))
    found.sort(key=lambda pair: pair[0])
    return [event for _, event in found[-MAX_EVENTS:]]
