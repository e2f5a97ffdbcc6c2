"""Schedule computation with an injected clock: windows, DST in
Europe/Berlin and America/New_York, missed runs and clock jumps."""

import dataclasses
import itertools
from datetime import UTC, datetime, time, timedelta

import pytest

from chaosk3s.errors import SpecError
from chaosk3s.gameday.plan import Schedule, Window, load_plan
from chaosk3s.gameday.schedule import (
    check_schedule,
    decide,
    in_window,
    next_run,
    occurrences,
)
from chaosk3s.gameday.schedule_loop import Scheduler
from tests.unit.test_gameday_plan import EXAMPLE

WEEKDAYS = frozenset(range(5))


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def first(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    return list(itertools.islice(occurrences(schedule, after), count))


def test_plain_cron_in_utc():
    weekly = Schedule("0 10 * * 2", "UTC")  # Tuesdays 10:00
    assert next_run(weekly, utc(2025, 1, 6, 12)) == utc(2025, 1, 7, 10)
    # Strictly after now: at 10:00 sharp the next is a week later.
    assert next_run(weekly, utc(2025, 1, 7, 10)) == utc(2025, 1, 14, 10)


def test_time_zone_is_applied():
    berlin = Schedule("0 10 * * 2", "Europe/Berlin")
    assert next_run(berlin, utc(2025, 1, 6)) == utc(2025, 1, 7, 9)  # CET
    assert next_run(berlin, utc(2025, 7, 7)) == utc(2025, 7, 8, 8)  # CEST


def test_windows_skip_to_the_next_opening():
    half_hourly = Schedule("*/30 * * * *", "Europe/Berlin",
                           (Window(WEEKDAYS, time(9), time(17)),))
    # Friday 16:45 Berlin: 17:00 is outside (end excluded) → Monday 09:00.
    friday = utc(2025, 1, 10, 15, 45)
    assert next_run(half_hourly, friday) == utc(2025, 1, 13, 8)
    runs = first(half_hourly, utc(2025, 1, 13, 7), 17)
    assert runs[0] == utc(2025, 1, 13, 8) and runs[15] == utc(2025, 1, 13,
                                                                15, 30)
    assert runs[16] == utc(2025, 1, 14, 8)  # 16 runs a day, then Tuesday


def test_a_night_window_crosses_midnight():
    hourly = Schedule("0 * * * *", "UTC", (Window(frozenset({4}), time(22),
                                                  time(6)),))
    runs = first(hourly, utc(2025, 1, 10, 21, 30), 9)  # from Friday 21:30
    assert runs[0] == utc(2025, 1, 10, 22)
    assert runs[7] == utc(2025, 1, 11, 5)  # Saturday 05:00, still inside
    assert runs[8] == utc(2025, 1, 17, 22)  # then the next Friday night
    assert in_window(hourly, utc(2025, 1, 11, 1))
    assert not in_window(hourly, utc(2025, 1, 11, 6))


def test_windows_that_exclude_every_run_are_an_error():
    never = Schedule("0 10 * * 2", "UTC", (Window(frozenset({5}), time(9),
                                                  time(17)),))
    with pytest.raises(SpecError, match="never falls inside"):
        check_schedule(never, utc(2025, 1, 1))


# -- DST ------------------------------------------------------------------
def test_berlin_spring_gap_runs_once_after_the_jump():
    # 2025-03-30: 02:00 CET → 03:00 CEST; 02:30 does not exist.
    nightly = Schedule("30 2 * * *", "Europe/Berlin")
    assert first(nightly, utc(2025, 3, 29, 12), 2) == [
        utc(2025, 3, 30, 1),  # 03:00 CEST, the first instant after the gap
        utc(2025, 3, 31, 0, 30)]  # 02:30 CEST
    quarterly = Schedule("*/15 * * * *", "Europe/Berlin")
    assert first(quarterly, utc(2025, 3, 30, 0, 40), 4) == [
        utc(2025, 3, 30, 0, 45),  # 01:45 CET
        utc(2025, 3, 30, 1),  # 02:00-02:45 collapse with 03:00 CEST
        utc(2025, 3, 30, 1, 15), utc(2025, 3, 30, 1, 30)]


def test_berlin_autumn_repeated_hour_runs_once():
    # 2025-10-26: 03:00 CEST → 02:00 CET; 02:30 happens twice.
    nightly = Schedule("30 2 * * *", "Europe/Berlin")
    assert first(nightly, utc(2025, 10, 25, 12), 2) == [
        utc(2025, 10, 26, 0, 30),  # the first 02:30 (CEST) only
        utc(2025, 10, 27, 1, 30)]
    # Asked during the repeated hour, after the run: not again.
    assert next_run(nightly, utc(2025, 10, 26, 1, 10)) == utc(2025, 10, 27,
                                                             1, 30)


def test_new_york_transitions():
    # 2025-03-09 02:00 EST → 03:00 EDT; 2025-11-02 02:00 EDT → 01:00 EST.
    spring = Schedule("30 2 * * *", "America/New_York")
    assert next_run(spring, utc(2025, 3, 8, 12)) == utc(2025, 3, 9, 7)
    hourly = Schedule("0 * * * *", "America/New_York")
    assert first(hourly, utc(2025, 11, 2, 4, 30), 3) == [
        utc(2025, 11, 2, 5),  # 01:00 EDT
        utc(2025, 11, 2, 7),  # 02:00 EST: the repeated 01:00 EST is skipped
        utc(2025, 11, 2, 8)]
    windowed = Schedule("30 1 * * *", "America/New_York",
                        (Window(frozenset({6}), time(1), time(2)),))
    assert next_run(windowed, utc(2025, 11, 1)) == utc(2025, 11, 2, 5, 30)


# -- missed runs and clock jumps -------------------------------------------
DAILY = Schedule("0 10 * * *", "UTC", catch_up_minutes=60)


def test_on_time_run():
    decision = decide(DAILY, utc(2025, 1, 7, 9, 59, 55),
                      utc(2025, 1, 7, 10, 0, 3))
    assert decision.run and decision.slot == utc(2025, 1, 7, 10)
    assert decision.missed == 0 and "on time" in decision.reason


def test_nothing_due_between_runs():
    assert not decide(DAILY, utc(2025, 1, 7, 11), utc(2025, 1, 7, 11, 1)).run


def test_long_sleep_is_not_replayed():
    # Suspended for three days, woken at 15:00: three runs were missed,
    # the last 5 h ago, past the 60 min catch-up → none runs.
    decision = decide(DAILY, utc(2025, 1, 4, 9), utc(2025, 1, 7, 15))
    assert not decision.run and decision.missed == 4
    assert "past catch_up_minutes" in decision.reason


def test_one_catch_up_after_a_jump_forward():
    # The clock jumps 3 days forward to 10:30: ONE run, for the latest.
    decision = decide(DAILY, utc(2025, 1, 4, 9), utc(2025, 1, 7, 10, 30))
    assert decision.run and decision.slot == utc(2025, 1, 7, 10)
    assert decision.missed == 3 and "30 min late" in decision.reason


def test_catch_up_needs_an_open_window():
    windowed = Schedule("55 16 * * *", "UTC", (Window(WEEKDAYS, time(9),
                                                      time(17)),), 60)
    decision = decide(windowed, utc(2025, 1, 7, 16), utc(2025, 1, 7, 17, 20))
    assert not decision.run and "window has closed" in decision.reason


def test_zero_catch_up_runs_only_on_time():
    strict = Schedule("0 10 * * *", "UTC", catch_up_minutes=0)
    assert not decide(strict, utc(2025, 1, 7, 9), utc(2025, 1, 7, 10, 20)).run
    assert decide(strict, utc(2025, 1, 7, 9, 59), utc(2025, 1, 7, 10, 1)).run


def test_backward_jump_never_repeats_a_run():
    last_run = utc(2025, 1, 7, 10)
    # After running at 10:00, the clock is set back to 09:00.
    back = decide(DAILY, utc(2025, 1, 7, 10, 5), utc(2025, 1, 7, 9),
                  last_run)
    assert not back.run and "backwards" in back.reason
    again = decide(DAILY, utc(2025, 1, 7, 9, 59), utc(2025, 1, 7, 10, 0, 5),
                   last_run)
    assert not again.run
    tomorrow = decide(DAILY, utc(2025, 1, 8, 9, 59), utc(2025, 1, 8, 10, 1),
                      last_run)
    assert tomorrow.run and tomorrow.slot == utc(2025, 1, 8, 10)


def test_scheduler_loop_with_a_jumping_clock():
    """The real loop, with an injected clock and a recording runner."""
    plan = dataclasses.replace(load_plan(EXAMPLE), schedule=Schedule(
        "*/10 * * * *", "UTC", catch_up_minutes=30))
    start, later = utc(2025, 1, 7, 9, 55), utc(2025, 1, 10, 11, 0)
    moments = iter(
        [start + timedelta(minutes=m) for m in range(31)]  # to 10:25
        + [utc(2025, 1, 10, 12, 5), utc(2025, 1, 10, 12, 6)]  # 3 days on
        + [later + timedelta(minutes=m) for m in range(80)])  # 1 h back
    messages, runs = [], []
    scheduler = Scheduler(plan, clock=lambda: next(moments),
                          progress=messages.append, step=0.001,
                          runner=lambda *args, **kwargs: runs.append(1))
    assert scheduler.serve(max_runs=5) == 0
    due = [m.split("run for ")[1].split(" ")[0] for m in messages
           if m.startswith("game day due")]
    assert due == [
        "2025-01-07T10:00:00+00:00", "2025-01-07T10:10:00+00:00",
        "2025-01-07T10:20:00+00:00",
        "2025-01-10T12:00:00+00:00",  # ONE catch-up for three days
        # the clock went back to 11:00: 11:10 ... 12:00 are not run
        # again (at or before the last run); 12:10 is new
        "2025-01-10T12:10:00+00:00"]
    assert len(runs) == 5
    assert any("skipped" not in m and "backwards" in m for m in messages)
