"""Running a matrix: one `chaos run` per experiment and release, each on
a lab of its own (the experiment's `lab_name` variable), N at a time.

Each child runs the experiment as a person would (`chaos run --var
lab_name=N --var lab_k3s_version=R ...`): its chaosk3s control starts
the lab, refuses what it must, heals and takes the lab down. The matrix
only schedules, watches and reads: on Ctrl-C or SIGTERM it starts
nothing more and sends SIGTERM to every child, which heals and ends
"interrupted"; a child that does not end within the heal grace is
killed, and a lab it leaves is taken down here.
"""

from __future__ import annotations

import os
import secrets
import signal
import string
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from chaosk3s.files import owner_only, write_atomically
from chaosk3s.gameday.redaction import scrub_run
from chaosk3s.gameday.runner import HEAL_GRACE_SECONDS, chaos_binary
from chaosk3s.matrix import RunResult, read_outcome
from chaosk3s.redact import Redactor
from chaosk3s.report import JournalError, load_journal
from chaosk3s.report.render import render_report

DEFAULT_LAB = "default"
POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 30.0
_NAME_CHARS = string.ascii_lowercase + string.digits

Progress = Callable[[str], None]


@dataclass
class Plan:
    """What to run and how: the runs in order, the arguments every child
    gets, and the redactor for their files."""

    runs: list[RunResult]
    jobs: int
    arguments: list[str]  # the caller's --var and --var-file, as typed
    redactor: Redactor = field(default_factory=Redactor)
    grace: float = HEAL_GRACE_SECONDS


# -- labs ------------------------------------------------------------------
def _lab(name: str):
    """The lab of that name (imported here: the lab is optional)."""
    from chaosk3s.lab.cluster import Lab
    from chaosk3s.lab.state import LabState
    return Lab(LabState(name=name))


def lab_is_up(name: str) -> bool:
    """Whether a lab of that name has state (up, or half made)."""
    return _lab(name).state.exists()


def take_down(name: str, progress: Progress) -> None:
    _lab(name).down(progress=progress)


def new_lab_names(count: int, taken: Callable[[str], bool] = lab_is_up
                  ) -> list[str]:
    """count lab names no lab has ([a-z][a-z0-9]{0,7}): `m`, four random
    characters shared by this matrix, and the run's number in base 36."""
    for _attempt in range(20):
        stem = "m" + "".join(secrets.choice(_NAME_CHARS) for _ in range(4))
        names = [stem + _base36(index) for index in range(count)]
        if not any(map(taken, names)):
            return names
    raise RuntimeError("no free lab names after 20 tries")  # not reached


def _base36(number: int) -> str:
    digits = string.digits + string.ascii_lowercase
    head, rest = divmod(number, 36)
    return (_base36(head) if head else "") + digits[rest]


# -- one child -------------------------------------------------------------
def command(plan: Plan, run: RunResult) -> list[str]:
    """The child's command line: chaos's debug log beside the journal,
    the matrix's variables first, then the caller's for this release
    (--var-for, as typed), then the caller's for every release."""
    argv = [str(chaos_binary()), "--log-file",
            str(run.directory / "journal.debug.log"), "run",
            "--journal-path", str(run.journal)]
    for key, value in run.variables.items():
        argv += ["--var", f"{key}={value}"]
    for assignment in run.release_variables.values():
        argv += ["--var", assignment]
    return [*argv, *plan.arguments, str(run.experiment)]


@dataclass
class _Child:
    run: RunResult
    process: subprocess.Popen
    began: float
    terminated_at: float | None = None
    killed: bool = False


def _start(plan: Plan, run: RunResult) -> _Child:
    run.directory.mkdir(parents=True, exist_ok=True)
    for path in (run.journal, run.log, run.directory / "journal.debug.log"):
        owner_only(path)  # chaos keeps the mode of an existing file
    with open(run.log, "wb") as output:
        process = subprocess.Popen(
            command(plan, run), stdout=output, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=run.experiment.parent,
            # Its own group: a terminal's Ctrl-C reaches only the matrix,
            # which stops every run in order.
            start_new_session=True)
    return _Child(run, process, time.monotonic())


def _finish(plan: Plan, child: _Child, progress: Progress) -> None:
    """The child ended: its group's leftovers ended, its files redacted,
    its verdict read, its report written, its lab gone."""
    run = child.run
    run.returncode = child.process.returncode
    run.seconds = round(time.monotonic() - child.began, 1)
    try:  # what it started and left (a `process` activity's command);
        # killed, it may have left them deaf to SIGTERM as it was
        os.killpg(child.process.pid, signal.SIGKILL if child.killed
                  else signal.SIGTERM)
    except ProcessLookupError:
        pass  # nothing left in its group
    try:
        scrub_run(plan.redactor, run.journal,
                  [run.log, run.directory / "journal.debug.log"])
        read_outcome(run)
    except Exception as exc:  # noqa: BLE001 - this run's, said in it
        run.verdict = "error"
        run.reason = f"its journal could not be read: {exc!r}"
    _render(run, progress)
    if lab_is_up(run.lab):
        progress(f"{label(run)}: its lab {run.lab} is still up; taking it "
                 f"down")
        take_down(run.lab, progress)


def _render(run: RunResult, progress: Progress) -> None:
    try:
        write_atomically(run.report, render_report(load_journal(
            run.journal)))
    except JournalError:
        pass  # no journal: the matrix says so, there is nothing to draw
    except OSError as exc:
        progress(f"{label(run)}: could not write its report: {exc}")


def label(run: RunResult) -> str:
    return f"{run.experiment.stem} on {run.release.version}"


# -- the schedule ----------------------------------------------------------
def run_plan(plan: Plan, stop: threading.Event, progress: Progress) -> bool:
    """Run every run, plan.jobs at a time; True if stopped before the end
    (the runs never started stay "not run")."""
    queue, running = list(plan.runs), []
    total, heartbeat = len(plan.runs), time.monotonic()
    while queue or running:
        while queue and len(running) < plan.jobs and not stop.is_set():
            run = queue.pop(0)
            try:
                running.append(_start(plan, run))
            except OSError as exc:  # one run's problem, not the matrix's
                run.verdict, run.reason = "error", f"not started: {exc}"
                progress(_ended(run))
                continue
            progress(f"[{total - len(queue)}/{total}] {label(run)}: "
                     f"running on lab {run.lab} (log {run.log})")
            heartbeat = time.monotonic()
        for child in [c for c in running if c.process.poll() is not None]:
            running.remove(child)
            _finish(plan, child, progress)
            progress(_ended(child.run))
            heartbeat = time.monotonic()
        if stop.is_set():
            queue = _stop(plan, queue, running, progress)
        if running and time.monotonic() - heartbeat >= HEARTBEAT_SECONDS:
            heartbeat = time.monotonic()
            progress(_waiting(running, len(queue)))
        time.sleep(POLL_SECONDS)
    return stop.is_set()


def _stop(plan: Plan, queue: list[RunResult], running: list[_Child],
          progress: Progress) -> list[RunResult]:
    """SIGTERM to every child once (it heals, then ends), a kill after
    the grace; what has not started never will."""
    for run in queue:
        run.reason = "the matrix was stopped before this run began"
    for child in running:
        if child.terminated_at is None:
            progress(f"{label(child.run)}: sent SIGTERM; waiting for it to "
                     f"heal what it injected and take its lab down")
            child.process.send_signal(signal.SIGTERM)
            child.terminated_at = time.monotonic()
        elif time.monotonic() - child.terminated_at > plan.grace and \
                child.process.poll() is None:
            progress(f"{label(child.run)}: did not end {plan.grace:.0f} s "
                     f"after SIGTERM: killed (its faults expire on the "
                     f"nodes after their fault_ttl)")
            child.process.kill()
            child.process.wait()
            child.killed = True
    return []


def _ended(run: RunResult) -> str:
    said = f"{label(run)}: {run.verdict}" + (
        f" in {run.seconds:.0f} s" if run.seconds is not None else "")
    if run.verdict != run.expected:
        said += f" (expected {run.expected})"
    return said + (f": {run.reason}" if run.reason and run.verdict
                   != "completed" else "")


def _waiting(running: list[_Child], queued: int) -> str:
    now = time.monotonic()
    shown = ", ".join(f"{label(c.run)} ({now - c.began:.0f} s)"
                      for c in running)
    return f"waiting for {shown}" + (f"; {queued} queued" if queued else "")
