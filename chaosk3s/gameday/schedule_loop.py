"""The foreground scheduler: `chaosk3s gameday schedule PLAN`.

For a systemd service or a container's main process. It wakes every
STEP_SECONDS (never sleeping until the next run in one go, so a clock
jump or a suspend is noticed within a step) and asks the pure `decide`
whether a run is due; see chaosk3s.gameday.schedule for the rules on
missed runs (at most one catch-up, never a burst) and DST.

SIGTERM or SIGINT stops it: between runs at once; during a run the
`chaos run` child gets SIGTERM so its chaosk3s control heals what it
injected, the scheduler waits for it, writes the reports, releases the
locks and exits 0.
"""

import threading
from collections.abc import Callable
from datetime import datetime

from chaosk3s.gameday.lock import utc_now
from chaosk3s.gameday.plan import Plan
from chaosk3s.gameday.runner import (
    GamedayResult,
    run_plan,
    stderr_progress,
    stop_on_signals,
)
from chaosk3s.gameday.schedule import check_schedule, decide, next_run

STEP_SECONDS = 5.0


class Scheduler:
    def __init__(self, plan: Plan,
                 clock: Callable[[], datetime] = utc_now,
                 progress: Callable[[str], None] = stderr_progress,
                 runner: Callable[..., GamedayResult] = run_plan,
                 step: float = STEP_SECONDS):
        self.plan, self.clock, self.progress = plan, clock, progress
        self.runner, self.step = runner, step
        self.stop = threading.Event()
        self.runs: list[GamedayResult] = []

    def install_signals(self) -> None:
        stop_on_signals(self.progress, self.stop)

    def serve(self, max_runs: int | None = None) -> int:
        """Run until stopped (or max_runs runs); exit code 0."""
        schedule = self.plan.schedule
        last_check, last_run = self.clock(), None
        announced = None
        check_schedule(schedule, last_check)
        while not self.stop.is_set():
            upcoming = next_run(schedule, last_check)
            if upcoming != announced:
                self._announce(upcoming)
                announced = upcoming
            wait = self.step if upcoming is None else \
                (upcoming - last_check).total_seconds()
            self.stop.wait(min(self.step, max(wait, 0.05)))
            if self.stop.is_set():
                break
            now = self.clock()
            decision = decide(schedule, last_check, now, last_run)
            last_check = now
            if decision.reason and not decision.run:
                self.progress(decision.reason)
            if decision.run:
                self.progress(f"game day due: {decision.reason}")
                self.runs.append(self.runner(self.plan, stop=self.stop,
                                             progress=self.progress))
                last_run = decision.slot
                # Occurrences that passed during the run are not replayed.
                last_check = max(self.clock(), last_check)
                if max_runs is not None and len(self.runs) >= max_runs:
                    break
        self.progress("scheduler stopped")
        return 0

    def _announce(self, upcoming: datetime | None) -> None:
        if upcoming is None:
            self.progress("no run within the horizon")
            return
        local = upcoming.astimezone(self.plan.schedule.zone)
        self.progress(f"next game day {self.plan.name}: "
                      f"{local:%a %Y-%m-%d %H:%M %Z} "
                      f"({upcoming:%Y-%m-%dT%H:%M:%SZ})")
