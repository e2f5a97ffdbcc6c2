"""The `chaosk3s` journal section: per-node readiness, timeline, faults.

Its shape is the contract in docs/lab-internals.md that the HTML report
reads. Times are ISO 8601 in UTC.
"""

from datetime import datetime

from chaosk3s.kube import Kube, KubeUnavailable, NodeState, node_state
from chaosk3s.model import Node, Topology


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return round(max(delta.total_seconds(), 0.0), 3)


def node_summary(name: str, timeline: list[dict], faults: list[dict],
                 final: NodeState | None) -> dict:
    """When the node went NotReady after the first fault, when it came
    back, and whether it is Ready at the end.

    recovery_seconds counts from the heal of the last fault that ended
    before the node came back (or from going NotReady, if later).
    """
    first_fault = min((f["started_at"] for f in faults), default=None)
    events = [e for e in timeline if e["node"] == name]
    not_ready_at = next(
        (e["at"] for e in events if e["ready"] != "True"
         and (first_fault is None or e["at"] >= first_fault)), None)
    ready_at = next((e["at"] for e in events if e["ready"] == "True"
                     and not_ready_at and e["at"] > not_ready_at), None)
    recovered = final is not None and final.ready == "True"
    heals = [f["ended_at"] for f in faults if f.get("ended_at")
             and (ready_at is None or f["ended_at"] <= ready_at)]
    since = max([*heals, not_ready_at or ""]) or None
    return {"not_ready_at": not_ready_at,
            "ready_at": ready_at if recovered else None,
            "recovered": recovered,
            "recovery_seconds": _seconds(since, ready_at)
            if recovered and not_ready_at else None}


def read_nodes(kube: Kube) -> list[dict]:
    """The Node objects now; none when no API server answers."""
    try:
        return kube.list_nodes()["items"]
    except (KubeUnavailable, OSError):
        return []


def build(target: str, nodes: dict[str, Node], timeline: list[dict],
          faults: list[dict], kube: Kube,
          final: list[dict] | None = None) -> dict:
    """The section. `recovered` is judged on `final`, the nodes as they
    were when the steady state was checked after the method (before
    rollbacks put things back), else read now. If no API server answers,
    no node counts as recovered: from the cluster's view none is Ready."""
    items = final if final is not None else read_nodes(kube)
    states = {i["metadata"]["name"]: node_state(i) for i in items}
    at_risk = {n.name for n in _at_risk(nodes)}
    summary = {}
    for name in sorted(set(nodes) | set(states)):
        node = nodes.get(name)
        summary[name] = {"role": node.role if node else "unknown",
                         "at_risk": name in at_risk,
                         **node_summary(name, timeline, faults,
                                        states.get(name))}
    versions = {i.get("status", {}).get("nodeInfo", {}).get(
        "kubeletVersion", "") for i in items} - {""}
    return {"target": target, "cluster": kube.contexts[0] or None,
            "k3s_versions": sorted(versions), "api_reachable": bool(items),
            "nodes": summary, "timeline": timeline, "faults": faults}


def _at_risk(nodes: dict[str, Node]) -> tuple[Node, ...]:
    return Topology(tuple(nodes.values())).at_risk()
