"""What is wrong with a cron expression, said precisely.

croniter (which runs the schedule) says only "is not acceptable, out of
range"; a plan's author needs to know which field and which value, and
what that field takes. The ranges are cron's (crontab(5)): minute 0-59,
hour 0-23, day of month 1-31, month 1-12 or jan-dec, day of week 0-7 or
sun-sat (0 and 7 are both Sunday). croniter has the last word: an
expression this check passes but croniter refuses is refused with its
reason.
"""

import re

from croniter import croniter

FIELDS = (("minute", 0, 59, ()),
          ("hour", 0, 23, ()),
          ("day-of-month", 1, 31, ()),
          ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul",
                            "aug", "sep", "oct", "nov", "dec")),
          ("day-of-week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri",
                                 "sat")))
SHAPE = "minute hour day-of-month month day-of-week, e.g. '0 10 * * 2'"
_PART = re.compile(r"(?P<range>\*|[^-/]+(?:-[^-/]+)?)(?:/(?P<step>.*))?")


def _value(token: str, low: int, high: int, names: tuple) -> int | None:
    if token.lower() in names:
        return names.index(token.lower()) + (1 if low == 1 else 0)
    if token.isdigit() and low <= int(token) <= high:
        return int(token)
    return None


def _takes(name: str, low: int, high: int, names: tuple) -> str:
    also = f" or {names[0]}-{names[-1]}" if names else ""
    return f"{name} takes {low}-{high}{also}, *, ranges a-b, lists a,b " \
           f"and steps */n"


def _field_problem(index: int, text: str) -> str | None:
    name, low, high, names = FIELDS[index]
    for part in text.split(","):
        match = _PART.fullmatch(part)
        step = match and match["step"]
        bounds = match["range"].split("-") if match else []
        bad = not match or (step is not None and not (
            step.isdigit() and int(step) > 0)) or any(
            _value(b, low, high, names) is None for b in bounds
            if b != "*")
        if bad:
            return (f"field {index + 1} ({name}) is {text!r}: "
                    f"{_takes(name, low, high, names)}")
    return None


def cron_problem(cron: str) -> str | None:
    """None for a usable 5-field expression (or an @ macro such as
    @daily), else one sentence naming the field and what it takes."""
    fields = cron.split()
    if cron.strip().startswith("@") and len(fields) == 1:
        return None if croniter.is_valid(cron.strip()) else (
            f"{cron!r} is not a cron macro (@hourly, @daily, @weekly, "
            f"@monthly, @yearly)")
    if len(fields) != 5:
        return (f"{cron!r} has {len(fields)} field(s); a cron expression "
                f"has 5: {SHAPE}")
    for index, text in enumerate(fields):
        problem = _field_problem(index, text)
        if problem:
            return f"{cron!r}: {problem}"
    try:
        croniter(cron)
    except (ValueError, KeyError) as exc:  # croniter's errors are both
        return f"{cron!r} is not a usable cron expression ({exc}): {SHAPE}"
    return None
