"""Inline SVG drawing shared by the charts: a time axis, bars, labels.

Charts are generated here rather than by a JS library so a report is one
file that opens offline, and nothing in it can execute. Every piece of
text passes through ``escape``; coordinates are numbers we computed.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup, escape

WIDTH = 1100  # the viewBox width; CSS scales it to the page
LABEL_WIDTH = 230
RIGHT_MARGIN = 24
ROW = 22  # one lane's height
AXIS = 26  # the time axis strip above the rows
LABEL_CHARS = 30  # a longer label is cut; its <title> keeps more
TIP_CHARS = 600  # a tooltip longer than this is cut
_DAY = 86400
_STEPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5,
          10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400,
          21600, 43200, _DAY, 2 * _DAY, 7 * _DAY, 14 * _DAY, 30 * _DAY,
          91 * _DAY, 365 * _DAY)
MAX_TICKS = 12

COLORS = {
    "action": "#3867d6", "probe": "#8854d0", "failed": "#e03131",
    "rollback": "#e8890c", "met": "#2f9e44", "not met": "#e03131",
    "Ready": "#2f9e44", "NotReady": "#e03131", "Unknown": "#f59f00",
    "no data": "#dee2e6", "fault": "#fa5252",
}


def short(label: str, limit: int = LABEL_CHARS) -> str:
    return label if len(label) <= limit else label[:limit - 1] + "…"


def utc_clock(moment: datetime) -> str:
    """The time of day in UTC, to a tenth: "21:40:11.5 UTC"."""
    moment = moment.astimezone(UTC)
    return f"{moment:%H:%M:%S}.{moment.microsecond // 100_000} UTC"


def stamp(seconds: float, moment: datetime | None) -> str:
    """An offset and, when the moment is known, its UTC time:
    "+21.5 s (21:40:11.5 UTC)"."""
    shown = clock(seconds)
    return f"{shown} ({utc_clock(moment)})" if moment else shown


def clock(seconds: float) -> str:
    """An offset from the run's start: "+0.25 s", "+45 s", "+2:05"."""
    if abs(seconds) < 1 and seconds:
        return f"+{seconds * 1000:.0f} ms"
    if abs(seconds) < 60:
        return f"+{seconds:.3g} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"+{minutes}:{rest:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"+{hours}h{minutes:02d}"


class TimeAxis:
    """Maps moments between start and end onto [x0, x1]."""

    def __init__(self, start: datetime, end: datetime,
                 x0: float = LABEL_WIDTH, x1: float = WIDTH - RIGHT_MARGIN):
        self.start, self.x0, self.x1 = start, x0, x1
        # a zero-length run still needs a drawable axis
        self.seconds = max((end - start).total_seconds(), 0.001)

    def x(self, moment: datetime | None) -> float:
        if moment is None:
            return self.x0
        offset = (moment - self.start).total_seconds()
        offset = min(max(offset, 0.0), self.seconds)
        return self.x0 + (self.x1 - self.x0) * offset / self.seconds

    def offset(self, moment: datetime | None) -> float:
        return 0.0 if moment is None else \
            (moment - self.start).total_seconds()

    def stamp(self, moment: datetime | None) -> str:
        """The offset with the absolute UTC time beside it."""
        return stamp(self.offset(moment), moment)

    def ticks(self) -> list[tuple[float, str]]:
        """At most MAX_TICKS + 1, whatever the span."""
        step = next((s for s in _STEPS if self.seconds / s <= MAX_TICKS),
                    self.seconds / MAX_TICKS)
        count = int(self.seconds / step) + 1
        return [(self.x0 + (self.x1 - self.x0) * i * step / self.seconds,
                 clock(i * step)) for i in range(count)]

    def draw(self, height: float) -> list[str]:
        """Tick labels along the top, faint grid lines down the rows."""
        parts = []
        for x, label in self.ticks():
            parts.append(
                f'<line class="grid" x1="{x:.1f}" y1="{AXIS - 4}" '
                f'x2="{x:.1f}" y2="{height:.1f}"/>'
                f'<text class="tick" x="{x:.1f}" y="{AXIS - 9}">'
                f'{escape(label)}</text>')
        return parts


def tip_text(tip: str) -> str:
    """A tooltip's text, cut at TIP_CHARS."""
    return tip if len(tip) <= TIP_CHARS else tip[:TIP_CHARS - 1] + "…"


def rect(x: float, y: float, width: float, height: float, fill: str,
         tip: str, css: str = "bar") -> str:
    """A bar with a hover tooltip; at least 2px wide so instants show."""
    return (f'<rect class="{css}" x="{x:.1f}" y="{y:.1f}" '
            f'width="{max(width, 2.0):.1f}" height="{height:.1f}" '
            f'fill="{fill}"><title>{escape(tip_text(tip))}</title></rect>')


@dataclass
class Bar:
    """One bar of a row, before drawing: rank orders fills when bars
    merge (the higher shows: a failure, an outage). tip may be a
    function, called only for a bar that is drawn on its own."""

    x0: float
    x1: float
    fill: str
    tip: str | Callable[[], str]
    rank: int = 0

    def text(self) -> str:
        return self.tip() if callable(self.tip) else self.tip


def squeeze(bars: list[Bar], describe: Callable[[list[Bar]], str]
            ) -> list[Bar]:
    """At most one bar per pixel column: bars that start in the same
    column become one, spanning them all, in the fill of the highest
    rank, with describe(members) as its tooltip. A row of 100,000
    changes draws as ~900 bars; one bar per pixel changes nothing."""
    columns: dict[int, list[Bar]] = {}
    for bar in bars:
        columns.setdefault(int(bar.x0), []).append(bar)
    merged = []
    for members in columns.values():
        if len(members) == 1:
            merged.append(members[0])
            continue
        top = max(members, key=lambda b: b.rank)
        merged.append(Bar(min(b.x0 for b in members),
                          max(b.x1 for b in members), top.fill,
                          describe(members), top.rank))
    return merged


def label(x: float, y: float, content: str, css: str = "label",
          tip: str | None = None) -> str:
    title = f"<title>{escape(tip_text(tip))}</title>" if tip else ""
    return (f'<text class="{css}" x="{x:.1f}" y="{y:.1f}">{title}'
            f'{escape(short(content))}</text>')


def band(x0: float, x1: float, top: float, bottom: float, tip: str,
         open_ended: bool = False) -> str:
    """A fault window shaded across the rows."""
    css = "band open" if open_ended else "band"
    return (f'<rect class="{css}" x="{x0:.1f}" y="{top:.1f}" '
            f'width="{max(x1 - x0, 2.0):.1f}" height="{bottom - top:.1f}">'
            f'<title>{escape(tip_text(tip))}</title></rect>')


def svg(height: float, parts: list[str], title: str,
        width: float = WIDTH) -> Markup:
    """Wrap parts in an accessible, scalable <svg> element."""
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" '
        f'aria-label="{escape(tip_text(title))}">'
        f'<title>{escape(tip_text(title))}</title>{"".join(parts)}</svg>')
