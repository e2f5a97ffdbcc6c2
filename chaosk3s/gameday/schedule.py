"""When a game day runs: cron + IANA time zone + allowed windows.

Pure: every function takes "now" (an aware datetime) and reads no clock.

The cron expression is evaluated on the plan's local wall clock
(croniter on naive local times); each wall time then becomes an instant:

- A wall time that does not exist (the hour skipped when DST starts) runs
  at the first instant after the gap, once: `30 2 * * *` in Europe/Berlin
  runs at 03:00 CEST that day; `*/15` collapses 02:00-02:45 into that
  single 03:00 run.
- A wall time that happens twice (the hour repeated when DST ends) runs
  at its first occurrence only, so no occurrence ever runs twice.
- Windows are checked on the wall time too: days of the week and
  [start, end) hours in the plan's time zone.

Missed runs (the scheduler was suspended, the host was down, the clock
jumped forward) are never replayed in a burst: `decide` allows at most
ONE catch-up run, for the most recent missed occurrence, and only when it
is at most `catch_up_minutes` late and the present moment is inside a
window; otherwise they are skipped and reported. A scheduler that starts
(or restarts) catches up nothing from before it started. After the clock
jumps backwards, no occurrence at or before the last run runs again.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from chaosk3s.errors import SpecError
from chaosk3s.gameday.plan import Schedule, Window

# Local offsets change by at most a few hours; start the wall-clock search
# this far back so an occurrence in a repeated hour is not missed.
LOOKBACK = timedelta(hours=3)
HORIZON = timedelta(days=400)  # a schedule must fire within about a year
MAX_STEPS = 20_000
# A run found due within this much of its time is on time, not a catch-up
# (the scheduler wakes every few seconds, more slowly on a loaded host).
ON_TIME = timedelta(minutes=2)
_MISSED_COUNT_LIMIT = 10_000
# A plan is refused when none of its cron's next this-many runs falls
# inside its windows (every run would be skipped).
CHECKED_RUNS = 10


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant a local wall time stands for (see module doc)."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first  # exists (first occurrence if repeated)
    # In a gap: fold=1 maps it before the transition, fold=0 after it.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high, after = first, first.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def _window_has(window: Window, wall: datetime) -> bool:
    clock, day = wall.time(), wall.weekday()
    end_ok = window.end is None or clock < window.end
    if window.end is None or window.start < window.end:
        return day in window.days and window.start <= clock and end_ok
    # Crosses midnight: the evening of a listed day, or the next morning.
    return (day in window.days and clock >= window.start) or \
        ((day - 1) % 7 in window.days and clock < window.end)


def wall_in_windows(schedule: Schedule, wall: datetime) -> bool:
    return not schedule.windows or any(
        _window_has(w, wall) for w in schedule.windows)


def in_window(schedule: Schedule, moment: datetime) -> bool:
    """Is the instant inside an allowed window (always, with none)?"""
    return wall_in_windows(schedule, _wall(moment, schedule.zone))


def _next_opening(schedule: Schedule, wall: datetime) -> datetime:
    """The first window start after the (outside-any-window) wall time."""
    openings = []
    for offset in range(8):
        day = (wall + timedelta(days=offset)).date()
        for window in schedule.windows:
            start = datetime.combine(day, window.start)
            if day.weekday() in window.days and start > wall:
                openings.append(start)
    return min(openings)


def occurrences(schedule: Schedule, after: datetime
                ) -> Iterator[datetime]:
    """Run instants (aware, UTC) strictly after `after`, in order, inside
    the windows, for up to HORIZON."""
    zone = schedule.zone
    start = _wall(after, zone) - LOOKBACK
    horizon = start + HORIZON
    cron = croniter(schedule.cron, start)
    for _ in range(MAX_STEPS):
        wall = cron.get_next(datetime)
        if wall > horizon:
            return
        if not wall_in_windows(schedule, wall):
            # Jump to the next opening instead of stepping through every
            # minute of a closed weekend.
            opening = _next_opening(schedule, wall)
            cron = croniter(schedule.cron, opening - timedelta(seconds=1))
            continue
        instant = _instant(wall, zone)
        if instant > after:  # also drops a gap's collapsed duplicates
            yield instant
            after = instant


def next_run(schedule: Schedule, now: datetime) -> datetime | None:
    """The first run strictly after now, or None within HORIZON."""
    return next(occurrences(schedule, now), None)


def check_schedule(schedule: Schedule, now: datetime) -> datetime:
    """next_run, or an error saying the windows exclude every run."""
    found = next_run(schedule, now)
    if found is None:
        raise SpecError(
            f"schedule {schedule.cron!r} ({schedule.timezone}) never falls "
            f"inside the allowed windows within {HORIZON.days} days; widen "
            f"the windows or change the cron expression")
    return found


def windows_problem(schedule: Schedule, now: datetime) -> str | None:
    """None, or why a plan whose cron's next CHECKED_RUNS runs all fall
    outside its windows is refused: every one would be skipped."""
    if not schedule.windows:
        return None
    cron = croniter(schedule.cron, _wall(now, schedule.zone))
    walls = [cron.get_next(datetime) for _ in range(CHECKED_RUNS)]
    if any(wall_in_windows(schedule, wall) for wall in walls):
        return None
    shown = ", ".join(w.strftime("%a %Y-%m-%d %H:%M") for w in walls[:3])
    return (f"schedule: none of the next {CHECKED_RUNS} runs of "
            f"{schedule.cron!r} ({schedule.timezone}: {shown}, ...) falls "
            f"inside the allowed windows, so every run would be skipped; "
            f"widen `windows` or change `schedule.cron`")


@dataclass(frozen=True)
class Decision:
    run: bool
    slot: datetime | None  # the occurrence a run stands for
    missed: int  # occurrences passed over without a run
    reason: str


def decide(schedule: Schedule, last_check: datetime, now: datetime,
           last_run: datetime | None = None) -> Decision:
    """Whether to run at `now`, given the last time the scheduler looked
    and the occurrence it last ran (see the module doc for the rules)."""
    if now <= last_check:
        return Decision(False, None, 0, "the clock went backwards" if
                        now < last_check else "")
    due = []
    for slot in occurrences(schedule, last_check):
        if slot > now or len(due) >= _MISSED_COUNT_LIMIT:
            break
        if last_run is None or slot > last_run:
            due.append(slot)
    if not due:
        return Decision(False, None, 0, "")
    latest, late = due[-1], now - due[-1]
    grace = max(ON_TIME, timedelta(minutes=schedule.catch_up_minutes))
    if late <= grace and in_window(schedule, now):
        kind = "on time" if late <= ON_TIME else f"{_minutes(late)} late"
        return Decision(True, latest, len(due) - 1,
                        f"run for {latest.isoformat()} ({kind})")
    why = ("the window has closed" if late <= grace else
           f"it is {_minutes(late)} late, past catch_up_minutes "
           f"({schedule.catch_up_minutes})")
    return Decision(False, None, len(due),
                    f"skipped {len(due)} missed run(s), the last due "
                    f"{latest.isoformat()}: {why}")


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.0f} min"
