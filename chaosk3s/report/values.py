"""Tolerant readers for journal values.

Journals come from every chaostoolkit 1.x, from killed runs and from hand
edits, so a field may be missing, null or of the wrong type. These helpers
turn whatever is there into a usable value or None, never an exception.
"""

import json
from datetime import UTC, datetime
from typing import Any

MAX_SHOWN_CHARS = 20_000  # an output longer than this is cut in the report


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as an aware UTC datetime, or None.

    Older chaostoolkit releases wrote naive timestamps; they were UTC.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def number(value: Any) -> float | None:
    """A finite float, or None (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if result == result and abs(result) != float("inf") \
        else None


def text(value: Any, default: str = "") -> str:
    """A display string; None becomes default."""
    if value is None:
        return default
    return value if isinstance(value, str) else str(value)


def mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def sequence(value: Any) -> list:
    return value if isinstance(value, list) else []


def seconds_between(start: datetime | None, end: datetime | None
                    ) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def pretty(value: Any) -> str:
    """Readable text for an output or a configuration, cut when huge."""
    if isinstance(value, str):
        shown = value
    else:
        try:
            shown = json.dumps(value, indent=2, ensure_ascii=False,
                               default=str, sort_keys=False)
        except (TypeError, ValueError):
            shown = repr(value)
    if len(shown) > MAX_SHOWN_CHARS:
        cut = len(shown) - MAX_SHOWN_CHARS
        shown = f"{shown[:MAX_SHOWN_CHARS]}\n… ({cut} more characters)"
    return shown


def compact(value: Any) -> str:
    """One-line JSON for tolerances and arguments."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)
