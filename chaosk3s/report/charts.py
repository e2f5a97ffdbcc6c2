"""The report's charts: the run timeline and the node readiness swimlanes.

Both share one time axis (the run's span) so a fault window lines up with
the nodes it took down.
"""

from functools import partial

from markupsafe import Markup

from chaosk3s.report.journal import Activity, Journal
from chaosk3s.report.k3sdata import K3sData
from chaosk3s.report.nodes import NOT_READY, UNKNOWN, NodeReport, Segment
from chaosk3s.report.svg import (
    AXIS,
    COLORS,
    ROW,
    Bar,
    TimeAxis,
    band,
    label,
    rect,
    squeeze,
    svg,
)

ONE_ROW_EACH = 60  # up to this many activities get a labelled row each
MAX_PACKED_ROWS = 8  # lanes per phase when activities are packed
MAX_FAULT_ROWS = 20  # then one row holds the rest
MAX_NODE_ROWS = 500  # swimlanes drawn; the tables list the nodes
_RANK = {COLORS["failed"]: 3, COLORS["Unknown"]: 2, COLORS["no data"]: -1}
_PHASES = (("before", "steady state before"), ("method", "method"),
           ("after", "steady state after"), ("rollback", "rollbacks"))


def _fill(activity: Activity) -> str:
    if activity.failed or activity.tolerance_met is False:
        return COLORS["failed"]
    if activity.phase in ("before", "after", "during"):
        return COLORS["met"]
    if activity.phase == "rollback":
        return COLORS["rollback"]
    return COLORS.get(activity.kind, COLORS["action"])


def _tip(activity: Activity, axis: TimeAxis) -> str:
    parts = [f"{activity.phase}: {activity.kind} {activity.name}",
             f"status {activity.status or 'unknown'}",
             f"start {axis.stamp(activity.start)}"]
    if activity.duration is not None:
        parts.append(f"took {activity.duration:.3f} s")
    if activity.tolerance:
        parts.append(f"tolerance {activity.tolerance}")
    if activity.error:
        parts.append(activity.error)
    return "\n".join(parts)


def _pack(activities: list[Activity], axis: TimeAxis) -> list[list[Activity]]:
    """Greedy interval packing into lanes, so 1,000 activities stay
    readable; the last lane takes the overflow."""
    lanes: list[list[Activity]] = []
    ends: list[float] = []
    for activity in sorted(activities, key=lambda a: axis.x(a.start)):
        start = axis.x(activity.start)
        lane = next((i for i, end in enumerate(ends) if end <= start), None)
        if lane is None and len(lanes) < MAX_PACKED_ROWS:
            lanes.append([])
            ends.append(0.0)
            lane = len(lanes) - 1
        lane = len(lanes) - 1 if lane is None else lane
        lanes[lane].append(activity)
        ends[lane] = max(axis.x(activity.end or activity.start), start) + 2
    return lanes


def _rows(journal: Journal, axis: TimeAxis
          ) -> list[tuple[str, list[Activity], str]]:
    """(label, activities, tooltip) per row of the timeline."""
    by_phase = {phase: [a for a in journal.activities if a.phase == phase]
                for phase, _ in _PHASES}
    total = sum(len(group) for group in by_phase.values())
    rows = []
    for phase, title in _PHASES:
        group = by_phase[phase]
        if phase in ("before", "after") or total > ONE_ROW_EACH:
            for index, lane in enumerate(_pack(group, axis)):
                rows.append((title if index == 0 else "", lane, title))
        else:
            rows += [(f"{a.name}", [a], f"{title}: {a.name}") for a in group]
    return rows


def _during(journal: Journal, axis: TimeAxis, y: float) -> list[str]:
    bars = []
    for index, state in enumerate(journal.during, start=1):
        met = "met" if state.met is not False else "not met"
        x = axis.x(state.start) - 1
        bars.append(Bar(x, x + 3, COLORS[met], f"check {index} during the "
                        f"method: steady state {met}", int(met != "met")))
    return _draw(bars, y + 4, ROW - 8, "checks")


def timeline_svg(journal: Journal) -> Markup:
    """Method, rollbacks and steady-state checks over time, with the
    fault windows shaded behind them."""
    axis = TimeAxis(*journal.span)
    rows = _rows(journal, axis)
    if journal.during:
        rows.insert(1, ("steady state during", [], "during"))
    fault_parts, faults = _fault_rows(journal.k3s, axis, AXIS)
    height = AXIS + ROW * max(len(rows) + faults, 1) + 6
    parts = axis.draw(height)
    parts += _fault_bands(journal.k3s, axis, AXIS, height) + fault_parts
    for index, (title, activities, tip) in enumerate(rows, start=faults):
        y = AXIS + index * ROW
        parts.append(label(8, y + ROW * 0.68, title, tip=tip))
        if tip == "during":
            parts += _during(journal, axis, y)
        bars = [Bar(axis.x(a.start), axis.x(a.end or a.start), _fill(a),
                    partial(_tip, a, axis), _RANK.get(_fill(a), 0))
                for a in activities]
        parts += _draw(bars, y + 4, ROW - 8, "activities")
    return svg(height, parts, f"Timeline of {journal.title}")


def _draw(bars: list[Bar], y: float, height: float, what: str,
          css: str = "bar") -> list[str]:
    """A row's bars, at most one per pixel column (svg.squeeze)."""
    def describe(members: list[Bar]) -> str:
        return (f"{len(members)} {what} start within one pixel of the "
                f"time axis; the first: {members[0].text()}")

    return [rect(b.x0, y, b.x1 - b.x0, height, b.fill, b.text(), css=css)
            for b in squeeze(bars, describe)]


def _fault_bands(k3s: K3sData | None, axis: TimeAxis, top: float,
                 bottom: float) -> list[str]:
    bars = []
    for fault in (k3s.faults if k3s else []):
        if fault.started_at is None:
            continue
        x0 = axis.x(fault.started_at)
        x1 = axis.x(fault.ended_at) if fault.ended_at else axis.x1
        until = (axis.stamp(fault.ended_at) if fault.ended_at
                 else "never healed")
        tip = (f"fault {fault.id} ({fault.kind}): {fault.description}\n"
               f"{axis.stamp(fault.started_at)} → {until}")
        bars.append(Bar(x0, x1, "", tip, int(fault.ended_at is None)))
    return [band(b.x0, b.x1, top, bottom, b.text(), open_ended=bool(b.rank))
            for b in squeeze(bars, lambda members: (
                f"{len(members)} faults start within one pixel of the time "
                f"axis; the first: {members[0].text()}"))]


def _fault_rows(k3s: K3sData | None, axis: TimeAxis, top: float
                ) -> tuple[list[str], int]:
    """One labelled row per fault above the activities."""
    parts: list[str] = []
    faults = [f for f in (k3s.faults if k3s else []) if f.started_at]
    rows = [[fault] for fault in faults[:MAX_FAULT_ROWS]]
    if len(faults) > MAX_FAULT_ROWS:  # the rest share the last row
        rows[-1] += faults[MAX_FAULT_ROWS:]
    for index, row in enumerate(rows):
        y = top + index * ROW
        name = row[0].description or f"{row[0].kind} {row[0].id}"
        if len(row) > 1:
            name = f"{len(row)} more faults"
        parts.append(label(8, y + ROW * 0.68, f"⚡ {name}",
                           tip=f"fault {row[0].id}: {name}"))
        parts += _draw([_fault_bar(fault, axis) for fault in row], y + 4,
                       ROW - 8, "faults", css="bar fault")
    return parts, len(rows)


def _fault_bar(fault, axis: TimeAxis) -> Bar:
    x1 = axis.x(fault.ended_at) if fault.ended_at else axis.x1
    nodes = ", ".join(fault.nodes[:20]) + (
        f" and {len(fault.nodes) - 20} more" if len(fault.nodes) > 20
        else "")
    return Bar(axis.x(fault.started_at), x1, COLORS["fault"],
               f"fault {fault.id} ({fault.kind}) on {nodes}: "
               f"{fault.description}")


def _node_row(node: NodeReport, axis: TimeAxis, y: float) -> list[str]:
    risk = " ⚠" if node.at_risk else ""
    tip = f"{node.name} ({node.role}{', at risk' if node.at_risk else ''})"
    parts = [label(8, y + ROW * 0.68, f"{node.name}{risk}", tip=tip)]
    bars = []
    for segment in node.segments:
        bars.append(Bar(
            axis.x(segment.start), axis.x(segment.end),
            COLORS[segment.state], partial(_segment_tip, node, segment, axis),
            _RANK.get(COLORS[segment.state], 0)))
    return parts + _draw(bars, y + 3, ROW - 6, "readiness changes",
                         css="seg")


def _segment_tip(node: NodeReport, segment: Segment, axis: TimeAxis
                 ) -> str:
    took = (segment.end - segment.start).total_seconds()
    return (f"{node.name}: {segment.state} from "
            f"{axis.stamp(segment.start)} to "
            f"{axis.stamp(segment.end)} ({took:.1f} s)"
            + _outage_tip(node, segment, axis))


def _outage_tip(node: NodeReport, segment: Segment, axis: TimeAxis) -> str:
    """A NotReady or Unknown stretch is often one part of an outage (the
    node controller says Unknown, the kubelet NotReady): name the whole."""
    outage = node.outage_at(segment.start) if segment.state in (
        NOT_READY, UNKNOWN) else None
    if outage is None:
        return ""
    if outage.ready_at is None:
        return (f"\npart of an outage from "
                f"{axis.stamp(outage.not_ready_at)}, not Ready "
                "again")
    return (f"\npart of an outage from "
            f"{axis.stamp(outage.not_ready_at)} to "
            f"{axis.stamp(outage.ready_at)} "
            f"({outage.seconds:.1f} s)")


def swimlanes_svg(k3s: K3sData, journal: Journal) -> Markup:
    """Per-node Ready / NotReady / Unknown over time, grouped by role."""
    axis = TimeAxis(*journal.span)
    rows: list[str | NodeReport] = []
    by_role: dict[str, list[NodeReport]] = {}
    for node in k3s.nodes:
        by_role.setdefault(node.role, []).append(node)
    drawn = 0
    for role in k3s.roles:
        if drawn >= MAX_NODE_ROWS:
            break
        members = by_role.get(role.role, [])[:MAX_NODE_ROWS - drawn]
        rows += [role.role, *members]
        drawn += len(members)
    if drawn < len(k3s.nodes):
        rows.append(f"… {len(k3s.nodes) - drawn} more nodes not drawn")
    height = AXIS + ROW * max(len(rows), 1) + 6
    parts = axis.draw(height)
    parts += _fault_bands(k3s, axis, AXIS, height)
    for index, row in enumerate(rows):
        y = AXIS + index * ROW
        if isinstance(row, str):
            parts.append(label(8, y + ROW * 0.72, row, css="group"))
        else:
            parts += _node_row(row, axis, y)
    return svg(height, parts, "Node readiness over time")
