"""Limits that make every journal render in bounded time and memory.

A journal is data from a run, a hand edit or an attacker: a 10 MB
exception, 100,000 timeline events, a timestamp years away from the
others, JSON nested thousands deep. The report reads it through
``bound``: strings longer than MAX_FIELD_CHARS keep their head and tail
around a note saying how much was cut, lists and mappings keep their
first MAX_ITEMS entries, containers deeper than MAX_DEPTH are replaced
by a note. A long string's head and tail are redacted before the cut,
each with SCRUB_MARGIN characters more than is kept, so a secret that
straddles the cut is never half shown, and no more than that is ever
scanned. Each cut is listed in the report (CUT_NOTES of
them, then a count). Rendering has its own caps (rows, bars, page
details; see render.py and charts.py), and the time axis spans at most
MAX_AXIS_SECONDS (journal.py).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_JOURNAL_BYTES = 64 * 1024 * 1024  # a larger file is refused
MAX_FIELD_CHARS = 20_000
_TAIL_CHARS = 4_000  # of a cut string, the end kept (a traceback's last
# line says what went wrong)
MAX_ITEMS = 100_000
MAX_DEPTH = 32
CUT_NOTES = 20
SCRUB_MARGIN = 64_000  # longer than any secret worth hiding


@dataclass
class Cuts:
    """What bound() cut, for the report to say."""

    notes: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, path: tuple, what: str) -> None:
        self.count += 1
        if len(self.notes) < CUT_NOTES:
            self.notes.append(f"{_where(path)}: {what}")


def _same(text: str) -> str:
    return text


def cut_text(text: str, limit: int = MAX_FIELD_CHARS,
             scrub: Callable[[str], str] = _same) -> str:
    """text, or its head and tail around a note of what was cut; scrub
    applies to each, margin included, before the cut."""
    if len(text) <= limit:
        return text
    tail = min(_TAIL_CHARS, limit // 4)
    head = limit - tail
    ending = scrub(text[-(tail + SCRUB_MARGIN):])[-tail:] if tail else ""
    return (f"{scrub(text[:head + SCRUB_MARGIN])[:head]}\n… "
            f"({len(text) - limit:,} characters cut) …\n{ending}")


def bound(value: Any, cuts: Cuts, path: tuple = (),
          scrub: Callable[[str], str] = _same) -> Any:
    """value within the limits above; every cut is recorded in cuts."""
    if isinstance(value, str):
        if len(value) > MAX_FIELD_CHARS:
            cuts.add(path, f"{len(value):,} characters, cut to "
                     f"{MAX_FIELD_CHARS:,}")
            return cut_text(value, scrub=scrub)
        return value
    if not isinstance(value, dict | list):
        return value
    if len(path) >= MAX_DEPTH:
        cuts.add(path, f"nested deeper than {MAX_DEPTH} levels; cut")
        return f"… (nested deeper than {MAX_DEPTH} levels; cut)"
    if len(value) > MAX_ITEMS:
        cuts.add(path, f"{len(value):,} entries, the first {MAX_ITEMS:,} "
                 f"kept")
    if isinstance(value, list):
        return [bound(item, cuts, (*path, index), scrub)
                for index, item in enumerate(value[:MAX_ITEMS])]
    items = list(value.items())[:MAX_ITEMS]
    return {cut_text(str(key), 200, scrub): bound(item, cuts, (*path, key),
                                                  scrub)
            for key, item in items}


def _where(path: tuple) -> str:
    """("run", 3, "output") as run[3].output."""
    shown = ""
    for part in path:
        shown += f"[{part}]" if isinstance(part, int) else \
            f"{'.' if shown else ''}{str(part)[:60]}"
    return shown or "the journal"
