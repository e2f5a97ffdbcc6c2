"""The extension's ``chaosk3s`` journal section, made ready to draw.

See "The chaosk3s journal section" in docs/lab-internals.md. Every field is
optional: a node may only appear in the timeline, a fault may never have
ended, a killed run may stop mid-outage.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median
from typing import Any

from chaosk3s.report.values import (
    mapping,
    number,
    parse_time,
    seconds_between,
    sequence,
    text,
)

# Same order as the lab spec's roles; the report may not import the lab.
ROLE_ORDER = ("etcd", "control-plane", "server", "agent")
READY, NOT_READY, UNKNOWN, NO_DATA = "Ready", "NotReady", "Unknown", "no data"
_CONDITION = {"true": READY, "false": NOT_READY, "unknown": UNKNOWN}


@dataclass
class Segment:
    state: str
    start: datetime
    end: datetime


@dataclass
class Fault:
    id: str
    kind: str
    nodes: list[str]
    description: str
    started_at: datetime | None
    ended_at: datetime | None


@dataclass
class NodeReport:
    name: str
    role: str
    at_risk: bool
    not_ready_at: datetime | None
    ready_at: datetime | None
    recovered: bool | None  # None: never NotReady, nothing to recover
    down_seconds: float | None
    to_not_ready: float | None  # fault start -> NotReady
    to_ready: float | None  # fault healed -> Ready
    segments: list[Segment] = field(default_factory=list)


@dataclass
class RoleSummary:
    role: str
    nodes: int
    went_not_ready: int
    not_recovered: int
    to_not_ready: float | None  # median over the role's nodes
    to_ready_worst: float | None
    down_worst: float | None


@dataclass
class K3sData:
    target: str
    cluster: str
    versions: list[str]
    nodes: list[NodeReport]
    faults: list[Fault]
    roles: list[RoleSummary]

    @property
    def not_recovered(self) -> list[NodeReport]:
        return [node for node in self.nodes if node.recovered is False]

    @property
    def worst_down(self) -> float | None:
        values = [n.down_seconds for n in self.nodes
                  if n.down_seconds is not None]
        return max(values) if values else None

    @property
    def unhealed(self) -> list[Fault]:
        return [f for f in self.faults if f.started_at and not f.ended_at]


def condition(value: Any) -> str:
    """A Ready condition status ("True", true, "False", ...) as a state."""
    return _CONDITION.get(text(value).strip().lower(), UNKNOWN)


def _faults(raw: Any) -> list[Fault]:
    faults = []
    for index, item in enumerate(sequence(raw)):
        item = mapping(item)
        faults.append(Fault(
            id=text(item.get("id"), f"fault-{index + 1}"),
            kind=text(item.get("kind"), "fault"),
            nodes=[text(n) for n in sequence(item.get("nodes"))],
            description=text(item.get("description")),
            started_at=parse_time(item.get("started_at")),
            ended_at=parse_time(item.get("ended_at"))))
    return sorted(faults, key=lambda f: (f.started_at is None,
                                         f.started_at or datetime.max))


def _timeline(raw: Any) -> dict[str, list[tuple[datetime, str]]]:
    changes: dict[str, list[tuple[datetime, str]]] = {}
    for item in sequence(raw):
        item = mapping(item)
        at = parse_time(item.get("at"))
        if at is None or item.get("node") is None:
            continue
        changes.setdefault(text(item["node"]), []).append(
            (at, condition(item.get("ready"))))
    for entries in changes.values():
        entries.sort(key=lambda entry: entry[0])
    return changes


def _segments(changes: list[tuple[datetime, str]], node: NodeReport,
              start: datetime, end: datetime) -> list[Segment]:
    """Ready/NotReady/Unknown spans; from the node's fields if no timeline."""
    if not changes and node.not_ready_at:
        changes = [(start, READY), (node.not_ready_at, NOT_READY)]
        if node.ready_at:
            changes.append((node.ready_at, READY))
    if not changes:
        return [Segment(NO_DATA, start, end)]
    spans = []
    if changes[0][0] > start:
        spans.append(Segment(NO_DATA, start, changes[0][0]))
    for index, (at, state) in enumerate(changes):
        until = changes[index + 1][0] if index + 1 < len(changes) else end
        if until > at:
            spans.append(Segment(state, at, until))
    return spans


def _first_change(changes: list[tuple[datetime, str]], state: str,
                  after: datetime | None = None) -> datetime | None:
    for at, seen in changes:
        if seen == state and (after is None or at > after):
            return at
    return None


def _cause(faults: list[Fault], name: str, when: datetime | None
           ) -> Fault | None:
    """The fault that most plausibly took this node down: the latest one
    started before it went NotReady, preferring faults naming the node."""
    started = [f for f in faults if f.started_at and
               (when is None or f.started_at <= when)]
    own = [f for f in started if name in f.nodes]
    candidates = own or started
    return candidates[-1] if candidates else None


def _node(name: str, raw: dict, changes: list[tuple[datetime, str]],
          faults: list[Fault], span: tuple[datetime, datetime]
          ) -> NodeReport:
    not_ready = (parse_time(raw.get("not_ready_at"))
                 or _first_change(changes, NOT_READY))
    ready = parse_time(raw.get("ready_at"))
    if ready is None and not_ready is not None:
        ready = _first_change(changes, READY, after=not_ready)
    recovered = raw.get("recovered")
    if not isinstance(recovered, bool):
        recovered = None if not_ready is None else ready is not None
    down = number(raw.get("recovery_seconds"))
    if down is None:
        down = seconds_between(not_ready, ready)
    cause = _cause(faults, name, not_ready)
    node = NodeReport(
        name=name, role=text(raw.get("role"), "unknown"),
        at_risk=raw.get("at_risk") is True, not_ready_at=not_ready,
        ready_at=ready, recovered=recovered, down_seconds=down,
        to_not_ready=seconds_between(cause and cause.started_at, not_ready),
        to_ready=seconds_between(cause and cause.ended_at, ready))
    node.segments = _segments(changes, node, *span)
    return node


def _role_key(role: str) -> tuple[int, str]:
    order = ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER)
    return order, role


def _natural(name: str) -> list[str | int]:
    """agent-2 before agent-10, as people count."""
    return [int(part) if part.isdigit() else part
            for part in re.split(r"(\d+)", name)]


def _summaries(nodes: list[NodeReport]) -> list[RoleSummary]:
    summaries = []
    for role in sorted({n.role for n in nodes}, key=_role_key):
        members = [n for n in nodes if n.role == role]
        to_nr = [n.to_not_ready for n in members
                 if n.to_not_ready is not None]
        to_ready = [n.to_ready for n in members if n.to_ready is not None]
        down = [n.down_seconds for n in members
                if n.down_seconds is not None]
        summaries.append(RoleSummary(
            role=role, nodes=len(members),
            went_not_ready=sum(1 for n in members if n.not_ready_at),
            not_recovered=sum(1 for n in members if n.recovered is False),
            to_not_ready=median(to_nr) if to_nr else None,
            to_ready_worst=max(to_ready) if to_ready else None,
            down_worst=max(down) if down else None))
    return summaries


def parse_k3s(raw: Any, span: tuple[datetime, datetime]) -> K3sData | None:
    """The chaosk3s section, or None when the journal has none."""
    if not isinstance(raw, dict):
        return None
    faults = _faults(raw.get("faults"))
    changes = _timeline(raw.get("timeline"))
    nodes_raw = mapping(raw.get("nodes"))
    names = list(nodes_raw) + [n for n in changes if n not in nodes_raw]
    nodes = [_node(text(name), mapping(nodes_raw.get(name)),
                   changes.get(text(name), []), faults, span)
             for name in names]
    nodes.sort(key=lambda n: (_role_key(n.role), _natural(n.name)))
    versions = raw.get("k3s_versions")
    if isinstance(versions, str):
        versions = [versions]
    return K3sData(
        target=text(raw.get("target")), cluster=text(raw.get("cluster")),
        versions=[text(v) for v in sequence(versions)], nodes=nodes,
        faults=faults, roles=_summaries(nodes))


def k3s_times(raw: Any) -> list[datetime]:
    """Every timestamp in the section, to size the charts' time axis."""
    raw = mapping(raw)
    found = [parse_time(mapping(i).get("at"))
             for i in sequence(raw.get("timeline"))]
    for fault in sequence(raw.get("faults")):
        fault = mapping(fault)
        found += [parse_time(fault.get("started_at")),
                  parse_time(fault.get("ended_at"))]
    for node in mapping(raw.get("nodes")).values():
        node = mapping(node)
        found += [parse_time(node.get("not_ready_at")),
                  parse_time(node.get("ready_at"))]
    return [moment for moment in found if moment is not None]
