"""Journal → one self-contained HTML file, through jinja2 with autoescape.

Everything a journal holds is data from the cluster (node names, outputs,
exception texts), so autoescape is on for every template and the only
``Markup`` that reaches a page is SVG that svg.py built with escape().
The page also carries a Content-Security-Policy that forbids scripts and
any network load: a second wall should escaping ever be missed.

A page stays bounded whatever the journal holds: tables show at most
MAX_ROWS rows (then say how many more), and the full outputs,
tracebacks and arguments share a budget of PAGE_DETAIL_CHARS (each cut
at MAX_SHOWN_CHARS, later ones at SPENT_DETAIL_CHARS once it is spent).
"""

import os
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from chaosk3s import __version__
from chaosk3s.files import write_atomically
from chaosk3s.report.bounds import cut_text
from chaosk3s.report.charts import swimlanes_svg, timeline_svg
from chaosk3s.report.journal import MAX_AXIS_SECONDS, Journal, load_journal
from chaosk3s.report.k3sdata import WATCH_VIEW
from chaosk3s.report.svg import stamp
from chaosk3s.report.values import compact, pretty

TEMPLATES = Path(__file__).parent / "templates"
SHORT_OUTPUT = 80  # characters of an output shown inline in a table
CLIP_CHARS = 300  # a list of names or a title shown in one cell
MAX_ROWS = 500  # rows of one table
LOG_SUFFIXES = (".log", ".debug.log")
PAGE_DETAIL_CHARS = 4_000_000
SPENT_DETAIL_CHARS = 500


def when(moment: datetime | None, with_date: bool = True) -> str:
    if moment is None:
        return "—"
    moment = moment.astimezone(UTC)
    shown = moment.strftime("%Y-%m-%d %H:%M:%S" if with_date
                            else "%H:%M:%S")
    return f"{shown}.{moment.microsecond // 100_000} UTC" if with_date \
        else f"{shown}.{moment.microsecond // 100_000}"


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) < 1:
        return f"{value * 1000:.0f} ms"
    if abs(value) < 120:
        return f"{value:.1f} s"
    minutes, rest = divmod(value, 60)
    return f"{int(minutes)} min {rest:.0f} s"


def after_heal(value: float | None) -> str:
    """A heal-to-Ready time; negative means Ready before the heal."""
    if value is None or value >= 0:
        return seconds(value)
    return f"{seconds(-value)} before the heal"


def inline(value: Any) -> str:
    """An output on one table line; the full value sits in <details>."""
    shown = value if isinstance(value, str) else compact(value)
    return shown if len(shown) <= SHORT_OUTPUT else \
        shown[:SHORT_OUTPUT] + "…"


def clip(value: Any, limit: int = CLIP_CHARS) -> str:
    """A cell's (or a title's) text, cut at limit characters."""
    shown = value if isinstance(value, str) else str(value)
    return shown if len(shown) <= limit else \
        shown[:limit] + f"… ({len(shown) - limit:,} more)"


class Details:
    """The page's budget for full outputs, tracebacks and arguments."""

    def __init__(self, budget: int = PAGE_DETAIL_CHARS):
        self.left = budget

    def __call__(self, value: Any) -> str:
        shown = pretty(value)
        if len(shown) > max(self.left, SPENT_DETAIL_CHARS):
            shown = cut_text(shown, max(self.left, SPENT_DETAIL_CHARS)) + \
                "\n(cut: this page's space for details is spent)"
        self.left -= len(shown)
        return shown


@cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True)
    env.filters.update(when=when, seconds=seconds, after_heal=after_heal,
                       pretty=pretty, inline=inline, compact=compact,
                       clip=clip)
    env.globals.update(version=__version__, MAX_ROWS=MAX_ROWS,
                       WATCH_VIEW=WATCH_VIEW)
    return env


def href(target: Path, base: Path) -> str:
    """A relative link that stays a path: every segment percent-encoded,
    so a directory called "javascript:..." cannot become a URL scheme."""
    relative = Path(os.path.relpath(target, base))
    return "./" + "/".join(quote(part, safe="") for part in relative.parts)


def log_links(journal_path: Path, out_dir: Path) -> list[tuple[str, str]]:
    """(link from the report, file name) of the run's log files found
    beside its journal: a game day's NAME.log and NAME.debug.log, or the
    chaostoolkit.log of a `chaos run` in that directory."""
    folder, stem = journal_path.parent, journal_path.stem
    found = [folder / f"{stem}{suffix}" for suffix in LOG_SUFFIXES]
    found.append(folder / "chaostoolkit.log")
    return [(href(path, out_dir), path.name) for path in found
            if path.is_file()]


def render_report(journal: Journal, out_dir: Path | None = None) -> str:
    """The page; out_dir (default: beside the journal) is where it will
    be written, for the links to the run's log files."""
    start = journal.span[0]
    k3s = journal.k3s
    logs = log_links(journal.path, out_dir or journal.path.parent)
    return environment().get_template("report.html").render(
        logs=logs,
        j=journal, k3s=k3s, verdict=journal.verdict, details=Details(),
        max_axis=MAX_AXIS_SECONDS,
        timeline=timeline_svg(journal),
        swimlanes=swimlanes_svg(k3s, journal) if k3s and k3s.nodes else "",
        since=lambda moment: "—" if moment is None else
        stamp((moment - start).total_seconds(), moment),
        # an outage not over when the journal ends lasted at least this
        open_for=lambda outage: (journal.span[1]
                                 - outage.not_ready_at).total_seconds(),
        generated=when(datetime.now(UTC)))


def render_journal(journal_path: Path, out_dir: Path,
                   name: str | None = None) -> Path:
    """Write the report for journal_path into out_dir and return its path
    (NAME.html, by default the journal's file name with .html)."""
    journal = load_journal(Path(journal_path))
    target = Path(out_dir) / (name or Path(journal_path).stem + ".html")
    write_atomically(target, render_report(journal, Path(out_dir)))
    return target
