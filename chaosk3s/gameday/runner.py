"""Run a game-day plan now: experiment by experiment, one `chaos run` each.

Everything lands in <report_dir>/<plan name>/<UTC timestamp>/: per
experiment NN-NAME.json (the journal), NN-NAME.html (its report),
NN-NAME.log (chaos's output) and NN-NAME.debug.log (its debug log), plus
gameday.json (the summary). The reports index over report_dir is then
updated and retention applied.

Exit codes, for a scheduler to act on:
  0  every experiment completed and the steady state held
  1  at least one experiment deviated (a finding), and no errors
  2  error or refusal: a bad plan, the lock held by another game day, an
     experiment that failed (a chaosk3s activity raised, or a probe), was
     refused by the chaosk3s control, aborted, was interrupted or left no
     journal
  3  skipped: asked to run only inside a window (`--only-in-window`, as
     the exported timers and CronJobs do) and the time is outside
An experiment error stops the game day (the cluster is in an unknown
state); a deviation stops it only when stop_on_deviation is true.

Every file of a run is its owner's only (0600) and holds no secret: the
chaosk3s control redacts the journal and chaos's logs as the run goes,
and after each run the runner redacts its journal and both logs again
(chaosk3s.redact) with what it knows to be secret (the experiment's
secrets block and secret-named configuration, the plan's vars and
webhook URLs): a run without the chaosk3s control, or output printed
outside logging, is covered too.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from chaosk3s.errors import ChaosK3sError
from chaosk3s.files import owner_only, write_atomically
from chaosk3s.gameday.lock import GamedayLock, LockLost, new_identity, utc_now
from chaosk3s.gameday.notify import notify
from chaosk3s.gameday.plan import Experiment, Plan
from chaosk3s.gameday.redaction import (
    experiment_redactor,
    plan_redactor,
    scrub_run,
)
from chaosk3s.gameday.retention import apply_retention, new_run_dir
from chaosk3s.gameday.schedule import in_window
from chaosk3s.report import Journal, JournalError, load_journal, update_index
from chaosk3s.report.render import render_report
from chaosk3s.report.verdict import COMPLETED, INTERRUPTED

EXIT_COMPLETED, EXIT_DEVIATED, EXIT_ERROR, EXIT_SKIPPED = 0, 1, 2, 3
POLL_SECONDS = 0.5
# How long a terminated `chaos run` may take to heal before it is killed
# (its faults then still expire on the nodes after their fault_ttl).
HEAL_GRACE_SECONDS = 300
SUMMARY_NAME = "gameday.json"


def chaos_binary() -> Path:
    """The chaos CLI of this very environment."""
    return Path(sys.executable).parent / "chaos"


def stderr_progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr,
          flush=True)


def stop_on_signals(progress: Callable[[str], None],
                    stop: threading.Event | None = None) -> threading.Event:
    """SIGTERM/SIGINT set `stop`: the game day ends gracefully, the chaos
    run healing first."""
    stop = stop or threading.Event()

    def handler(signum, _frame):
        progress(f"received {signal.Signals(signum).name}: stopping after "
                 f"healing")
        stop.set()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)
    return stop


@dataclass
class ExperimentResult:
    experiment: str
    status: str  # completed, deviated, failed, refused, aborted, interrupted,
    # error (no journal), skipped (not run)
    detail: str = ""
    journal: str | None = None
    report: str | None = None
    seconds: float = 0.0


@dataclass
class GamedayResult:
    plan: str
    target: str
    exit_code: int
    message: str = ""
    run_dir: Path | None = None
    started: str | None = None
    finished: str | None = None
    experiments: list[ExperimentResult] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for result in self.experiments:
            counts[result.status] = counts.get(result.status, 0) + 1
        return counts


def run_plan(plan: Plan, stop: threading.Event | None = None,
             progress: Callable[[str], None] = stderr_progress,
             only_in_window: bool = False,
             clock: Callable[[], datetime] = utc_now) -> GamedayResult:
    """Run the plan now under the game-day lock; never raises for what a
    scheduler should see as an outcome (see the module doc)."""
    stop = stop or threading.Event()
    result = GamedayResult(plan.name, plan.target, EXIT_ERROR)
    if only_in_window and not in_window(plan.schedule, clock()):
        result.exit_code = EXIT_SKIPPED
        result.message = "outside the plan's allowed windows; skipped"
        progress(f"game day {plan.name}: {result.message}")
        return result
    lock = GamedayLock(plan.target, new_identity(plan.name), progress)
    try:
        lock.acquire()
    except ChaosK3sError as exc:
        result.message = f"refused: {exc}"
        progress(f"game day {plan.name}: {result.message}")
        return result
    try:
        _run_locked(plan, result, lock, stop, progress, clock)
    finally:
        lock.release()
    return result


def _run_locked(plan: Plan, result: GamedayResult, lock: GamedayLock,
                stop: threading.Event, progress: Callable[[str], None],
                clock: Callable[[], datetime]) -> None:
    started = clock()
    result.started = started.isoformat()
    result.run_dir = new_run_dir(plan.report_dir / plan.name, started)
    progress(f"game day {plan.name} against {plan.target}: "
             f"{len(plan.experiments)} experiment(s) → {result.run_dir}")
    _notify(plan, "start", _event("start", result), progress)
    for index, experiment in enumerate(plan.experiments):
        if stop.is_set() or _should_stop(plan, result):
            result.experiments.append(ExperimentResult(
                experiment.path.name, "skipped", "not run"))
            continue
        outcome = _run_one(plan, experiment, index, result.run_dir, lock,
                           stop, progress)
        result.experiments.append(outcome)
        if outcome.status == "deviated":
            _notify(plan, "deviation", {**_event("deviation", result),
                                        "experiment": asdict(outcome)},
                    progress)
    result.finished = clock().isoformat()
    result.exit_code = exit_code(result.experiments)
    _finish(plan, result, progress, clock)


def _should_stop(plan: Plan, result: GamedayResult) -> bool:
    last = result.experiments[-1].status if result.experiments else None
    if last in (None, "completed", "skipped"):
        return False
    return last != "deviated" or plan.stop_on_deviation


def exit_code(results: list[ExperimentResult]) -> int:
    statuses = {r.status for r in results}
    if statuses - {"completed", "deviated", "skipped"}:
        return EXIT_ERROR
    return EXIT_DEVIATED if "deviated" in statuses else EXIT_COMPLETED


def _finish(plan: Plan, result: GamedayResult,
            progress: Callable[[str], None],
            clock: Callable[[], datetime]) -> None:
    summary = {**asdict(result), "run_dir": str(result.run_dir),
               "counts": result.counts()}
    write_atomically(result.run_dir / SUMMARY_NAME, json.dumps(
        plan_redactor(plan).value(summary), indent=2) + "\n")
    for removed in apply_retention(plan.report_dir / plan.name,
                                   plan.retention, result.run_dir, clock()):
        progress(f"retention: removed {removed}")
    try:
        index = update_index(plan.report_dir)
        progress(f"index: {index}")
    except (ChaosK3sError, OSError) as exc:
        progress(f"could not update the reports index: {exc}")
    _notify(plan, "finish", {**_event("finish", result),
                             "summary": summary}, progress)


def _notify(plan: Plan, event: str, payload: dict,
            progress: Callable[[str], None]) -> None:
    """The event's webhook, in its format, redacted as the summary is."""
    notify(plan.webhook(event), plan_redactor(plan).value(payload),
           progress, plan.webhook_format(event))


def _event(name: str, result: GamedayResult) -> dict:
    return {"event": name, "plan": result.plan, "target": result.target,
            "run_dir": str(result.run_dir), "started": result.started}


def _command(plan: Plan, experiment: Experiment, journal: Path
             ) -> list[str]:
    # Chaos's debug log beside the journal, not in the experiment's dir.
    argv = [str(chaos_binary()), "--log-file",
            str(journal.with_suffix(".debug.log")), "run", "--journal-path",
            str(journal)]
    variables = dict(experiment.vars)
    if "target" in experiment.declared and "target" not in variables:
        variables["target"] = plan.target
    for key, value in variables.items():
        kind = {int: ":int", float: ":float"}.get(type(value), "")
        argv += ["--var", f"{key}{kind}={value}"]
    return [*argv, str(experiment.path)]


def _run_one(plan: Plan, experiment: Experiment, index: int,
             run_dir: Path, lock: GamedayLock, stop: threading.Event,
             progress: Callable[[str], None]) -> ExperimentResult:
    stem = f"{index + 1:02d}-{experiment.path.stem}"
    journal, log = run_dir / f"{stem}.json", run_dir / f"{stem}.log"
    label = f"[{index + 1}/{len(plan.experiments)}] {experiment.path.name}"
    progress(f"{label}: running (log {log})")
    began = time.monotonic()
    # Experiments whose configuration reads CHAOSK3S_TARGET (or declares
    # no target) get the plan's target from the environment.
    env = {**os.environ, "CHAOSK3S_TARGET": plan.target}
    for path in (journal, log, journal.with_suffix(".debug.log")):
        owner_only(path)  # chaos keeps the mode of an existing file
    with open(log, "wb") as output:
        child = subprocess.Popen(
            _command(plan, experiment, journal), stdout=output,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=experiment.path.parent, env=env,
            # Its own group: a terminal's Ctrl-C reaches only the runner,
            # which stops the run in order; leftovers can be found.
            start_new_session=True)
        lost = _wait(child, lock, stop, progress)
        _end_leftovers(child.pid)
    scrub_run(experiment_redactor(plan, experiment), journal,
              [log, journal.with_suffix(".debug.log")])
    outcome, loaded = classify(journal, child.returncode)
    if lost:
        outcome.status, outcome.detail = "error", lost
    outcome.experiment = experiment.path.name
    outcome.seconds = round(time.monotonic() - began, 1)
    if loaded is not None:
        outcome.report = _render(loaded, journal, run_dir, progress)
    progress(f"{label}: {outcome.status} in {outcome.seconds:.0f} s"
             f"{': ' + outcome.detail if outcome.detail else ''}")
    return outcome


def _wait(child: subprocess.Popen, lock: GamedayLock,
          stop: threading.Event, progress: Callable[[str], None]
          ) -> str | None:
    """Wait for the chaos run, renewing the lock. On stop (SIGTERM) or a
    lost lock it gets SIGTERM, so its chaosk3s control heals, and is
    waited for; killed only after HEAL_GRACE_SECONDS."""
    terminated_at, lost = None, None
    while child.poll() is None:
        try:
            lock.keep()
        except LockLost as exc:
            lost = str(exc)
        if (stop.is_set() or lost) and terminated_at is None:
            progress("stopping: sent SIGTERM to the chaos run; waiting for "
                     "it to heal what it injected")
            child.send_signal(signal.SIGTERM)
            terminated_at = time.monotonic()
        if terminated_at is not None and \
                time.monotonic() - terminated_at > HEAL_GRACE_SECONDS:
            progress("the chaos run did not end after SIGTERM: killed; its "
                     "faults expire on the nodes after their fault_ttl")
            child.kill()
            child.wait()
        if stop.is_set():
            time.sleep(POLL_SECONDS)
        else:
            stop.wait(POLL_SECONDS)
    return lost


def _end_leftovers(group: int) -> None:
    """An interrupted chaos run may leave its activities' processes (a
    `process` provider's command) behind: end them with their group."""
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        pass  # nothing left


def classify(path: Path, returncode: int | None
             ) -> tuple[ExperimentResult, Journal | None]:
    """The experiment's outcome as its report's verdict states it (one
    reading of the journal for the runner and the reviewer), and the
    journal read."""
    try:
        journal = load_journal(path)
    except JournalError:
        return ExperimentResult("", "error", f"chaos run exited "
                                f"{returncode} and left no journal"), None
    kind = journal.verdict.kind
    if kind == INTERRUPTED and journal.status == "aborted":
        kind = "aborted"
    detail = "" if kind == COMPLETED else journal.verdict.reason
    return ExperimentResult("", kind, detail, str(path)), journal


def _render(journal: Journal, path: Path, run_dir: Path,
            progress: Callable[[str], None]) -> str | None:
    target = run_dir / f"{path.stem}.html"
    try:
        write_atomically(target, render_report(journal))
    except (ChaosK3sError, OSError) as exc:
        progress(f"could not render {path.name}: {exc}")
        return None
    return str(target)
