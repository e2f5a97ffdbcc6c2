"""Per-node figures for the report: each outage with its own three
durations, the readiness segments, and the per-role summary.

A node's outages come, in this order of preference, from the journal's
`outages` (chaosk3s writes them), from the readiness timeline (older
journals: the same arithmetic, chaosk3s.journal_section), or from the
old `not_ready_at`/`ready_at` fields. The old `recovery_seconds` is never
read: it was the time from the last heal to Ready, or the outage when the
node went NotReady after the heal or no fault was recorded, so it had no
one meaning; both figures are computed again from the times it came from.
See "The chaosk3s journal section" in docs/lab-internals.md.
"""

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from statistics import median
from typing import Any

from chaosk3s import journal_section
from chaosk3s.journal_section import FaultWindow, Outage, attribute
from chaosk3s.report.values import (
    mapping,
    number,
    parse_time,
    seconds_between,
    text,
)

READY, NOT_READY, UNKNOWN, NO_DATA = "Ready", "NotReady", "Unknown", "no data"
Changes = list[tuple[datetime, str]]


@dataclass
class Segment:
    state: str
    start: datetime
    end: datetime


@dataclass
class OutageReport:
    """NotReady (or Unknown) until Ready again; ready_at None: never."""

    not_ready_at: datetime
    ready_at: datetime | None
    fault: str  # the id of the fault it is attributed to, "" if none
    to_not_ready: float | None  # the fault's start -> NotReady
    to_ready_after_heal: float | None  # the fault's heal -> Ready
    began_before_timeline: bool = False  # down when first seen

    @property
    def seconds(self) -> float | None:
        return seconds_between(self.not_ready_at, self.ready_at)

    def covers(self, moment: datetime) -> bool:
        return self.not_ready_at <= moment and (
            self.ready_at is None or moment < self.ready_at)


@dataclass
class NodeReport:
    name: str
    role: str
    at_risk: bool
    # None: never NotReady, nothing to recover; or held down
    recovered: bool | None
    outages: list[OutageReport] = field(default_factory=list)
    # the run's own fault that still held it down when the steady state
    # was checked after the method ("" none): where the experiment put
    # it (a stop its rollback undoes), not a node that did not recover
    held_down: str = ""
    segments: list[Segment] = field(default_factory=list)

    @property
    def not_ready_at(self) -> datetime | None:
        return self.outages[0].not_ready_at if self.outages else None

    @cached_property
    def longest(self) -> OutageReport | None:
        """The longest outage that ended; one that did not has no
        length."""
        ended = [o for o in self.outages if o.ready_at is not None]
        return max(ended, key=lambda o: o.seconds, default=None)

    @property
    def down_at_end(self) -> bool:
        """Not Ready again by the end of the run, and not because the run
        held it down until its rollback (then the journal ends before its
        Ready can be seen)."""
        return not self.held_down and bool(self.outages) \
            and self.outages[-1].ready_at is None

    def outage_at(self, moment: datetime) -> OutageReport | None:
        """The outage covering moment (outages are in time order and do
        not overlap: the latest one begun by then, if not over)."""
        index = bisect_right(self.outages, moment,
                             key=lambda o: o.not_ready_at)
        found = self.outages[index - 1] if index else None
        return found if found is not None and found.covers(moment) \
            else None


@dataclass
class RoleSummary:
    role: str
    nodes: int
    went_not_ready: int
    not_recovered: int
    to_not_ready: float | None  # median over the role's outages
    to_ready_after_heal: float | None  # the slowest
    longest_outage: float | None  # the longest that ended


def _stored(raw: list) -> list[OutageReport]:
    found = []
    for item in map(mapping, raw):
        start = parse_time(item.get("not_ready_at"))
        if start is None:
            continue
        found.append(OutageReport(
            not_ready_at=start, ready_at=parse_time(item.get("ready_at")),
            fault=text(item.get("fault")),
            to_not_ready=number(item.get("seconds_to_not_ready")),
            to_ready_after_heal=number(
                item.get("seconds_to_ready_after_heal")),
            began_before_timeline=item.get("began_before_timeline") is True))
    return sorted(found, key=lambda o: o.not_ready_at)


def _from(outage: Outage) -> OutageReport:
    return OutageReport(
        not_ready_at=outage.not_ready_at, ready_at=outage.ready_at,
        fault=outage.fault.id if outage.fault else "",
        to_not_ready=outage.to_not_ready,
        to_ready_after_heal=outage.to_ready_after_heal,
        began_before_timeline=outage.began_before_timeline)


def _old_fields(name: str, raw: dict, faults: list[FaultWindow]
                ) -> list[OutageReport]:
    """Journals without a timeline: the one outage the old fields held."""
    start = parse_time(raw.get("not_ready_at"))
    if start is None:
        return []
    return [_from(Outage(start, parse_time(raw.get("ready_at")),
                         attribute(faults, name, start), False))]


def outages(name: str, raw: dict, changes: Changes,
            faults: list[FaultWindow]) -> list[OutageReport]:
    """The node's outages from the best source the journal has."""
    if isinstance(raw.get("outages"), list):
        return _stored(raw["outages"])
    if changes:
        return [_from(o) for o in journal_section.find_outages(
            name, [(at, state == READY) for at, state in changes], faults)]
    return _old_fields(name, raw, faults)


def segments(changes: Changes, node: NodeReport, start: datetime,
             end: datetime) -> list[Segment]:
    """Ready/NotReady/Unknown spans; from the outages if no timeline."""
    if not changes and node.outages:
        changes = [(start, READY)]
        for outage in node.outages:
            changes.append((outage.not_ready_at, NOT_READY))
            if outage.ready_at:
                changes.append((outage.ready_at, READY))
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


def node_report(name: str, raw: dict, changes: Changes,
                faults: list[FaultWindow], span: tuple[datetime, datetime]
                ) -> NodeReport:
    found = outages(name, raw, changes, faults)
    held = text(raw.get("held_down"))
    recovered: Any = raw.get("recovered")
    if held:
        recovered = None  # not judged: the run itself held it down
    elif not isinstance(recovered, bool):
        recovered = None if not found else found[-1].ready_at is not None
    node = NodeReport(name=name, role=text(raw.get("role"), "unknown"),
                      at_risk=raw.get("at_risk") is True,
                      recovered=recovered, outages=found, held_down=held)
    node.segments = segments(changes, node, *span)
    return node


def _values(members: list[NodeReport], pick) -> list[float]:
    return [value for node in members for outage in node.outages
            if (value := pick(outage)) is not None]


def summaries(nodes: list[NodeReport], roles: list[str]
              ) -> list[RoleSummary]:
    """One line per role, in the order given."""
    found, by_role = [], {}
    for node in nodes:
        by_role.setdefault(node.role, []).append(node)
    for role in roles:
        members = by_role.get(role, [])
        to_nr = _values(members, lambda o: o.to_not_ready)
        after = _values(members, lambda o: o.to_ready_after_heal)
        lengths = _values(members, lambda o: o.seconds)
        found.append(RoleSummary(
            role=role, nodes=len(members),
            went_not_ready=sum(1 for n in members if n.outages),
            not_recovered=sum(1 for n in members if n.recovered is False),
            to_not_ready=median(to_nr) if to_nr else None,
            to_ready_after_heal=max(after) if after else None,
            longest_outage=max(lengths) if lengths else None))
    return found


def fault_windows(faults: list) -> list[FaultWindow]:
    """The report's faults as the outage arithmetic wants them."""
    return [FaultWindow(f.id, frozenset(f.nodes) | frozenset(f.peers),
                        f.started_at, f.ended_at) for f in faults]

