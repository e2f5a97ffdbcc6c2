"""Inline SVG drawing shared by the charts: a time axis, bars, labels.

Charts are generated here rather than by a JS library so a report is one
file that opens offline, and nothing in it can execute. Every piece of
text passes through ``escape``; coordinates are numbers we computed.
"""

from datetime import datetime

from markupsafe import Markup, escape

WIDTH = 1100  # the viewBox width; CSS scales it to the page
LABEL_WIDTH = 230
RIGHT_MARGIN = 24
ROW = 22  # one lane's height
AXIS = 26  # the time axis strip above the rows
LABEL_CHARS = 30  # a longer label is cut; its <title> keeps all of it
_STEPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5,
          10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400,
          21600, 43200, 86400)
MAX_TICKS = 12

COLORS = {
    "action": "#3867d6", "probe": "#8854d0", "failed": "#e03131",
    "rollback": "#e8890c", "met": "#2f9e44", "not met": "#e03131",
    "Ready": "#2f9e44", "NotReady": "#e03131", "Unknown": "#f59f00",
    "no data": "#dee2e6", "fault": "#fa5252",
}


def short(label: str, limit: int = LABEL_CHARS) -> str:
    return label if len(label) <= limit else label[:limit - 1] + "…"


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

    def ticks(self) -> list[tuple[float, str]]:
        step = next((s for s in _STEPS if self.seconds / s <= MAX_TICKS),
                    _STEPS[-1])
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


def rect(x: float, y: float, width: float, height: float, fill: str,
         tip: str, css: str = "bar") -> str:
    """A bar with a hover tooltip; at least 2px wide so instants show."""
    return (f'<rect class="{css}" x="{x:.1f}" y="{y:.1f}" '
            f'width="{max(width, 2.0):.1f}" height="{height:.1f}" '
            f'fill="{fill}"><title>{escape(tip)}</title></rect>')


def label(x: float, y: float, content: str, css: str = "label",
          tip: str | None = None) -> str:
    title = f"<title>{escape(tip)}</title>" if tip else ""
    return (f'<text class="{css}" x="{x:.1f}" y="{y:.1f}">{title}'
            f'{escape(short(content))}</text>')


def band(x0: float, x1: float, top: float, bottom: float, tip: str,
         open_ended: bool = False) -> str:
    """A fault window shaded across the rows."""
    css = "band open" if open_ended else "band"
    return (f'<rect class="{css}" x="{x0:.1f}" y="{top:.1f}" '
            f'width="{max(x1 - x0, 2.0):.1f}" height="{bottom - top:.1f}">'
            f'<title>{escape(tip)}</title></rect>')


def svg(height: float, parts: list[str], title: str,
        width: float = WIDTH) -> Markup:
    """Wrap parts in an accessible, scalable <svg> element."""
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" '
        f'aria-label="{escape(title)}">'
        f'<title>{escape(title)}</title>{"".join(parts)}</svg>')
