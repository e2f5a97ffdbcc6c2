"""The extension's ``chaosk3s`` journal section, made ready to draw.

See "The chaosk3s journal section" in docs/lab-internals.md. Every field is
optional: a node may only appear in the timeline, a fault may never have
ended, a killed run may stop mid-outage.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from chaosk3s.redact import redact
from chaosk3s.report.nodes import (
    NOT_READY,
    READY,
    UNKNOWN,
    NodeReport,
    OutageReport,
    RoleSummary,
    fault_windows,
    node_report,
    summaries,
)
from chaosk3s.report.values import mapping, number, parse_time, sequence, text

# Same order as the lab spec's roles; the report may not import the lab.
ROLE_ORDER = ("etcd", "control-plane", "server", "agent")
_CONDITION = {"true": READY, "false": NOT_READY, "unknown": UNKNOWN}


@dataclass
class Fault:
    id: str
    kind: str
    nodes: list[str]
    peers: list[str]
    description: str
    started_at: datetime | None
    ended_at: datetime | None


@dataclass
class LabFacts:
    """The lab the run used (the section's `lab`)."""

    release: str
    family: str
    timings_profile: str
    timings: dict[str, Any]


@dataclass
class LogExcerpt:
    """A node's log lines around one of its transitions (NotReady or
    Ready), or why they were not read."""

    transition: str
    at: datetime | None
    lines: list[str]
    truncated: bool
    error: str


@dataclass
class NodeLogs:
    node: str
    excerpts: list[LogExcerpt]
    error: str  # the node could not be read at all


# Said wherever a run's "recovered" figures are shown and the fresh read
# at the check after the method did not answer (final_source "watch").
WATCH_VIEW = "judged on the readiness watch's view, not a fresh API read"


@dataclass
class K3sData:
    target: str
    cluster: str
    versions: list[str]
    nodes: list[NodeReport]
    faults: list[Fault]
    roles: list[RoleSummary]
    variables: dict | None = None  # None: the journal does not say
    lab: LabFacts | None = None
    real_cluster: bool = False  # the journal says: no lab
    # The API's NodeNotReady/NodeReady Events ({"node", "reason", "at",
    # "source", "message"}); None: not read (or could not be)
    node_events: list[dict] | None = None
    events_recorded: bool = False  # the journal has the key at all
    # Each node's log around its transitions (the section's
    # `node_logs`); None: not read
    node_logs: list[NodeLogs] | None = None
    logs_recorded: bool = False  # the journal has the key at all
    # Where the nodes `recovered` was judged on came from: "api" (a fresh
    # read), "watch" (the readiness watch's last view), "" (not said:
    # an older journal); and why not a fresh read
    final_source: str = ""
    final_error: str = ""
    node_events_error: str = ""  # why `node_events` is null
    node_logs_error: str = ""  # why `node_logs` is null

    @property
    def not_recovered(self) -> list[NodeReport]:
        return [node for node in self.nodes if node.recovered is False]

    @property
    def down_at_end(self) -> list[NodeReport]:
        return [node for node in self.nodes if node.down_at_end]

    @property
    def held_down(self) -> list[NodeReport]:
        """Nodes a fault of the run still held down at the steady-state
        check after the method: not judged, neither recovered nor not."""
        return [node for node in self.nodes if node.held_down]

    @cached_property
    def longest(self) -> tuple[NodeReport, OutageReport] | None:
        """The longest outage that ended, and its node."""
        found = [(n, n.longest) for n in self.nodes if n.longest]
        return max(found, key=lambda pair: pair[1].seconds, default=None)

    @property
    def longest_outage(self) -> float | None:
        return self.longest[1].seconds if self.longest else None

    @property
    def slowest_after_heal(self) -> float | None:
        """The longest time from a heal to Ready of any outage."""
        values = [o.to_ready_after_heal for n in self.nodes
                  for o in n.outages if o.to_ready_after_heal is not None]
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
            peers=[text(n) for n in sequence(item.get("peers"))],
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


def _role_key(role: str) -> tuple[int, str]:
    order = ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER)
    return order, role


def _natural(name: str) -> list[str | int]:
    """agent-2 before agent-10, as people count."""
    return [int(part) if part.isdigit() else part
            for part in re.split(r"(\d+)", name)]


def _lab(raw: dict) -> tuple[LabFacts | None, bool]:
    """The lab the run used, and whether the journal says there was none
    (a real cluster); older journals say neither."""
    if "lab" not in raw:
        return None, False
    lab = raw["lab"]
    if not isinstance(lab, dict):
        return None, lab is None
    timings = {text(k): v for k, v in mapping(lab.get("timings")).items()
               if number(v) is not None or isinstance(v, str)}
    return LabFacts(release=text(lab.get("release")),
                    family=text(lab.get("family")),
                    timings_profile=text(lab.get("timings_profile")),
                    timings=timings), False


def _variables(raw: dict) -> dict | None:
    """The variables in force; the control redacts them, the report does
    it again so a hand-made journal cannot leak one either."""
    found = raw.get("variables")
    return redact(found) if isinstance(found, dict) else None


def _node_events(raw: dict) -> list[dict] | None:
    found = raw.get("node_events")
    if not isinstance(found, list):
        return None
    events = []
    for item in map(mapping, found):
        events.append({
            "node": text(item.get("node")), "reason": text(item.get(
                "reason")), "at": parse_time(item.get("at")),
            "source": text(item.get("source")),
            "message": text(item.get("message"))})
    return events


MAX_EXCERPT_LINES = 60  # the control keeps 40; a hand edit may not


def _excerpt(item: dict) -> LogExcerpt:
    lines = [redact(text(line)) for line in sequence(item.get("lines"))]
    return LogExcerpt(
        transition=text(item.get("transition")),
        at=parse_time(item.get("at")), lines=lines[:MAX_EXCERPT_LINES],
        truncated=bool(item.get("truncated"))
        or len(lines) > MAX_EXCERPT_LINES,
        error=redact(text(item.get("error"))))


def _node_logs(raw: dict) -> list[NodeLogs] | None:
    """The section's `node_logs`, redacted again: a hand-made journal
    must not leak a secret through a log line either."""
    found = raw.get("node_logs")
    if not isinstance(found, dict):
        return None
    return [NodeLogs(node=text(name), excerpts=[
        _excerpt(mapping(e)) for e in sequence(mapping(entry).get(
            "excerpts"))], error=redact(text(mapping(entry).get("error"))))
        for name, entry in found.items()]


def parse_k3s(raw: Any, span: tuple[datetime, datetime]) -> K3sData | None:
    """The chaosk3s section, or None when the journal has none."""
    if not isinstance(raw, dict):
        return None
    faults = _faults(raw.get("faults"))
    windows = fault_windows(faults)
    changes = _timeline(raw.get("timeline"))
    nodes_raw = mapping(raw.get("nodes"))
    names = list(nodes_raw) + [n for n in changes if n not in nodes_raw]
    nodes = [node_report(text(name), mapping(nodes_raw.get(name)),
                         changes.get(text(name), []), windows, span)
             for name in names]
    nodes.sort(key=lambda n: (_role_key(n.role), _natural(n.name)))
    versions = raw.get("k3s_versions")
    if isinstance(versions, str):
        versions = [versions]
    lab, real_cluster = _lab(raw)
    roles = sorted({n.role for n in nodes}, key=_role_key)
    return K3sData(
        target=text(raw.get("target")), cluster=text(raw.get("cluster")),
        versions=[text(v) for v in sequence(versions)], nodes=nodes,
        faults=faults, roles=summaries(nodes, roles),
        variables=_variables(raw), lab=lab, real_cluster=real_cluster,
        node_events=_node_events(raw), events_recorded="node_events" in raw,
        node_logs=_node_logs(raw), logs_recorded="node_logs" in raw,
        **_why_not(raw))


def _why_not(raw: dict) -> dict[str, str]:
    """Where the final node view came from, and why a read was not made
    (API errors may quote URLs: redacted as the rest)."""
    source = text(raw.get("final_source"))
    return {"final_source": source if source in ("api", "watch") else "",
            **{key: redact(text(raw.get(key))) for key in (
                "final_error", "node_events_error", "node_logs_error")}}


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
        for outage in map(mapping, sequence(node.get("outages"))):
            found += [parse_time(outage.get("not_ready_at")),
                      parse_time(outage.get("ready_at"))]
    return [moment for moment in found if moment is not None]
