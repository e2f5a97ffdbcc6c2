"""The `chaosk3s` journal section: per-node readiness and outages, the
readiness timeline, the faults.

Its shape is the contract in docs/lab-internals.md that the HTML report
reads. Times are ISO 8601 in UTC. Everything but `build` and
`final_view` is pure: the report runs the same outage arithmetic on
older journals, so this module imports the Kubernetes client only where
it reads the API (importing it costs the report 0.6 s).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from chaosk3s.model import Node, Topology

if TYPE_CHECKING:
    from chaosk3s.kube import Kube

READY = "True"  # the Ready condition's status; "False" and "Unknown" are down
# Where the nodes `recovered` is judged on came from (`final_source`):
API = "api"  # a fresh read of the API, made at `checked_at`
WATCH = "watch"  # the readiness watch's last view at `checked_at`


@dataclass(frozen=True)
class FaultWindow:
    """A fault as outages need it: who it touched and when."""

    id: str
    nodes: frozenset[str]  # the nodes it changed and, for a cut, the peers
    started_at: datetime | None
    ended_at: datetime | None  # None: never healed


@dataclass(frozen=True)
class Outage:
    """One span of a node not Ready: from the first NotReady or Unknown
    to the next Ready (ready_at None: not Ready again by the end of the
    timeline)."""

    not_ready_at: datetime
    ready_at: datetime | None
    fault: FaultWindow | None  # the fault it is attributed to
    began_before_timeline: bool  # already down when first seen

    @property
    def seconds(self) -> float | None:
        return _between(self.not_ready_at, self.ready_at)

    @property
    def to_not_ready(self) -> float | None:
        """From the fault's start to NotReady; unknown when the outage
        began before the timeline did."""
        if self.fault is None or self.began_before_timeline:
            return None
        return _between(self.fault.started_at, self.not_ready_at)

    @property
    def to_ready_after_heal(self) -> float | None:
        """From the fault's heal to Ready; negative when the node was
        Ready again before the fault was healed."""
        if self.fault is None:
            return None
        return _between(self.fault.ended_at, self.ready_at)


def parse_time(value: str) -> datetime:
    """An ISO 8601 time as an aware datetime; naive ones are UTC."""
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def fault_windows(faults: list[dict]) -> list[FaultWindow]:
    """The ledger's fault entries (see actions.py) as windows."""
    return [FaultWindow(
        id=str(f.get("id", "")),
        nodes=frozenset(f.get("nodes") or ()) | frozenset(
            f.get("peers") or ()),
        started_at=parse_time(f["started_at"]) if f.get("started_at")
        else None,
        ended_at=parse_time(f["ended_at"]) if f.get("ended_at") else None)
        for f in faults]


def attribute(faults: list[FaultWindow], name: str, moment: datetime
              ) -> FaultWindow | None:
    """The fault that most plausibly took the node down at moment: the
    latest one started by then, preferring faults that name the node
    (a control-plane outage takes down agents it never touched)."""
    started = sorted((f for f in faults if f.started_at
                      and f.started_at <= moment),
                     key=lambda f: f.started_at)
    own = [f for f in started if name in f.nodes]
    candidates = own or started
    return candidates[-1] if candidates else None


def find_outages(name: str, changes: list[tuple[datetime, bool]],
                 faults: list[FaultWindow]) -> list[Outage]:
    """Every outage of a node from its (moment, ready) changes, in time
    order: consecutive NotReady and Unknown are one outage."""
    outages: list[Outage] = []
    down_since: datetime | None = None
    first_seen_down = False
    for index, (moment, ready) in enumerate(sorted(changes,
                                                   key=lambda c: c[0])):
        if not ready and down_since is None:
            down_since, first_seen_down = moment, index == 0
        elif ready and down_since is not None:
            outages.append(Outage(down_since, moment, attribute(
                faults, name, down_since), first_seen_down))
            down_since = None
    if down_since is not None:
        outages.append(Outage(down_since, None, attribute(
            faults, name, down_since), first_seen_down))
    return outages


def longest(outages: list[Outage]) -> Outage | None:
    """The longest outage that ended (the first of equals); one that
    never ended has no length."""
    ended = [o for o in outages if o.ready_at is not None]
    return max(ended, key=lambda o: o.seconds, default=None)


def outage_entry(outage: Outage) -> dict:
    return {"not_ready_at": outage.not_ready_at.isoformat(),
            "ready_at": outage.ready_at.isoformat() if outage.ready_at
            else None,
            "outage_seconds": outage.seconds,
            "fault": outage.fault.id if outage.fault else None,
            "seconds_to_not_ready": outage.to_not_ready,
            "seconds_to_ready_after_heal": outage.to_ready_after_heal,
            "began_before_timeline": outage.began_before_timeline}


def holding(faults: list[FaultWindow], name: str,
            moment: datetime | None) -> FaultWindow | None:
    """The run's own fault that still acted on the node at moment (it
    names the node and had started, not yet healed): a node it holds
    down is where the experiment put it, not a node that failed to
    recover (a stop the rollback undoes, say)."""
    if moment is None:
        return None
    held = [f for f in faults if name in f.nodes and f.started_at
            and f.started_at <= moment
            and (f.ended_at is None or f.ended_at > moment)]
    return max(held, key=lambda f: f.started_at, default=None)


def node_summary(name: str, timeline: list[dict], faults: list[dict],
                 final: str | None, checked_at: datetime | None = None
                 ) -> dict:
    """The node's outages (all of them, with the longest that ended) and
    whether it recovered: Ready at the steady state after the method.

    final: its Ready status then ("True", "False", "Unknown"), None if
    the API did not list it; checked_at: when the nodes were read then.
    A node not Ready while one of the run's faults still held it down
    (`held_down` names the fault) is not judged: `recovered` is None.
    """
    changes = [(parse_time(e["at"]), e["ready"] == READY)
               for e in timeline if e["node"] == name]
    windows = fault_windows(faults)
    outages = find_outages(name, changes, windows)
    worst = longest(outages)
    held = None if final == READY else holding(windows, name, checked_at)
    return {"recovered": None if held else final == READY,
            "held_down": held.id if held else None,
            "outages": [outage_entry(o) for o in outages],
            "longest_outage_seconds": worst.seconds if worst else None}


@dataclass(frozen=True)
class FinalView:
    """The Node objects `recovered` is judged on, when and where from."""

    nodes: list[dict]
    at: datetime
    source: str = API  # API or WATCH
    error: str | None = None  # why no fresh read was used (WATCH only)


def section(target: str, cluster: str | None, nodes: dict[str, Node],
            timeline: list[dict], faults: list[dict],
            final: dict[str, str], versions: list[str],
            checked_at: datetime | None = None, source: str = API,
            error: str | None = None) -> dict:
    """The section from what was recorded; final maps each node listed
    at the steady state after the method (at checked_at, from source:
    API or WATCH, error saying why not a fresh read) to its Ready
    status. `api_reachable`: whether the fresh read answered; null when
    none was tried (the journal so far)."""
    at_risk = {n.name for n in Topology(tuple(nodes.values())).at_risk()}
    summary = {}
    for name in sorted(set(nodes) | set(final)):
        node = nodes.get(name)
        summary[name] = {"role": node.role if node else "unknown",
                         "at_risk": name in at_risk,
                         **node_summary(name, timeline, faults,
                                        final.get(name), checked_at)}
    tried = source == API or error is not None
    return {"target": target, "cluster": cluster,
            "k3s_versions": sorted(set(versions) - {""}),
            "api_reachable": source == API if tried else None,
            "checked_at": checked_at.isoformat() if checked_at else None,
            "final_source": source, "final_error": error,
            "nodes": summary, "timeline": timeline, "faults": faults}


def final_view(kube: Kube, watched: Callable[[], list[dict]],
               seconds: float | None = None) -> FinalView:
    """The nodes now: a fresh read of the API, bounded (Kube.call_within:
    one try per context, no retries, `seconds` in all, BOUNDED_SECONDS
    by default); when it does not answer within them, `watched()` (the
    readiness watch's last view), saying so and why."""
    from chaosk3s.errors import ChaosK3sError
    from chaosk3s.kube import BOUNDED_SECONDS
    seconds = BOUNDED_SECONDS if seconds is None else seconds
    at = datetime.now(UTC)
    try:
        return FinalView(kube.call_within("list_node", seconds)["items"],
                         at)
    except (ChaosK3sError, OSError) as exc:
        return FinalView(watched(), at, WATCH,
                         f"no fresh read within {seconds:g}s: {exc}")


def build(target: str, nodes: dict[str, Node], timeline: list[dict],
          faults: list[dict], kube: Kube, final: FinalView) -> dict:
    """The section. `recovered` is judged on `final`, the nodes as they
    were when the steady state was checked after the method (before
    rollbacks put things back), else at the run's end. If the API did
    not list a node then (or answered nothing and no watch saw one), it
    does not count as recovered (unless a fault of the run held it
    down). Reads nothing: kube only names the cluster."""
    from chaosk3s.kube import node_state  # see the module docstring
    ready = {i["metadata"]["name"]: node_state(i).ready
             for i in final.nodes}
    versions = [i.get("status", {}).get("nodeInfo", {}).get(
        "kubeletVersion", "") for i in final.nodes]
    return section(target, kube.contexts[0] or None, nodes, timeline,
                   faults, ready, versions, final.at, final.source,
                   final.error)
