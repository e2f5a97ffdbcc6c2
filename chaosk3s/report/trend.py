"""The index's trend chart: the longest outage per experiment over time.

An outage is a node's time from NotReady (or Unknown) to Ready again; each
run's point is its longest. A run where a node never came back has no
such figure; it is drawn as a red cross on the top edge so it cannot be
mistaken for a short outage.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from chaosk3s.report.svg import COLORS, TimeAxis, short, svg

HEIGHT, TOP, BOTTOM, LEFT = 320, 28, 40, 64
PALETTE = ("#3867d6", "#e8890c", "#2f9e44", "#8854d0", "#0c8599",
           "#d6336c", "#5c940d", "#495057")
Y_TICKS = 5
DATE_TICKS = 6


@dataclass
class Point:
    experiment: str
    at: datetime
    seconds: float | None  # the longest outage; None: a node never came back
    verdict: str


def _nice_max(value: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if value <= step * Y_TICKS:
            return step * Y_TICKS
    return value * 1.1


def _date_label(moment: datetime, span: timedelta) -> str:
    return moment.strftime("%m-%d %H:%M" if span < timedelta(days=3)
                           else "%Y-%m-%d")


def _axes(axis: TimeAxis, top_value: float, width: float) -> list[str]:
    parts = []
    plot_bottom = HEIGHT - BOTTOM
    for i in range(Y_TICKS + 1):
        value = top_value * i / Y_TICKS
        y = plot_bottom - (plot_bottom - TOP) * i / Y_TICKS
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" '
                     f'x2="{width - 20}" y2="{y:.1f}"/><text class="tick" '
                     f'x="{LEFT - 26}" y="{y + 4:.1f}">{value:g} s</text>')
    span = timedelta(seconds=axis.seconds)
    for i in range(DATE_TICKS + 1):
        moment = axis.start + span * i / DATE_TICKS
        parts.append(f'<text class="tick" x="{axis.x(moment):.1f}" '
                     f'y="{plot_bottom + 18}">'
                     f'{escape(_date_label(moment, span))}</text>')
    return parts


def _point(x: float, y: float, color: str, tip: str, lost: bool) -> str:
    if lost:
        return (f'<path d="M{x - 5:.1f} {y - 5:.1f}l10 10m0 -10l-10 10" '
                f'stroke="{COLORS["failed"]}" stroke-width="2.5">'
                f'<title>{escape(tip)}</title></path>')
    return (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}">'
            f'<title>{escape(tip)}</title></circle>')


def _legend(names: list[str], width: float) -> tuple[list[str], float]:
    """Series names in rows under the chart; returns parts and height."""
    parts, x, y = [], float(LEFT), HEIGHT + 6.0
    for index, name in enumerate(names):
        shown = short(name, 40)
        step = 26 + 7 * len(shown)
        if x + step > width and x > LEFT:
            x, y = float(LEFT), y + 18
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="12" height="12"'
                     f' rx="3" fill="{PALETTE[index % len(PALETTE)]}"/>'
                     f'<text class="label" x="{x + 17:.1f}" y="{y + 10:.1f}">'
                     f'<title>{escape(name)}</title>{escape(shown)}</text>')
        x += step
    return parts, y + 24


def trend_svg(points: list[Point], width: float = 1100) -> Markup:
    """One line per experiment: its longest outage run after run."""
    dated = sorted((p for p in points if p.at), key=lambda p: p.at)
    names = list(dict.fromkeys(p.experiment for p in dated))
    if not dated:
        return Markup("")
    first, last = dated[0].at, dated[-1].at
    if last - first < timedelta(minutes=1):  # one run still needs an axis
        first, last = first - timedelta(minutes=1), last + timedelta(
            minutes=1)
    axis = TimeAxis(first, last, LEFT + 10, width - 60)
    top_value = _nice_max(max([p.seconds or 0 for p in dated] + [1]))
    plot_bottom = HEIGHT - BOTTOM

    def y_of(point: Point) -> float:
        if point.seconds is None:
            return TOP - 8
        return plot_bottom - (plot_bottom - TOP) * point.seconds / top_value

    parts = _axes(axis, top_value, width)
    for index, name in enumerate(names):
        color = PALETTE[index % len(PALETTE)]
        series = [p for p in dated if p.experiment == name]
        line = " ".join(f"{axis.x(p.at):.1f},{y_of(p):.1f}" for p in series
                        if p.seconds is not None)
        if line:
            parts.append(f'<polyline class="series" stroke="{color}" '
                         f'points="{line}"/>')
        for p in series:
            shown = "a node never recovered" if p.seconds is None else \
                f"longest outage {p.seconds:.1f} s"
            parts.append(_point(axis.x(p.at), y_of(p), color,
                                f"{name}\n{p.at:%Y-%m-%d %H:%M} UTC: "
                                f"{shown} ({p.verdict})", p.seconds is None))
    legend, height = _legend(names, width)
    return svg(height, parts + legend,
               "Longest outage per experiment over time", width)
