"""Hand a plan's schedule to systemd: a .service and a .timer.

The service runs `chaosk3s gameday run --only-in-window PLAN` (windows are
enforced at run time: exit 3, a success for systemd, outside them). The
timer's OnCalendar= is the cron expression in the plan's time zone, when
systemd can say it: cron's day-of-month OR day-of-week rule (both
restricted) and croniter's extensions (L, W, #) cannot be, and the error
suggests running `chaosk3s gameday schedule PLAN` as a service instead.
Persistent=true gives the one catch-up run after downtime that the
scheduler also allows (systemd has no age limit on it).
"""

import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from croniter import croniter

from chaosk3s.errors import EnvironmentProblem, SpecError
from chaosk3s.gameday.plan import Plan
from chaosk3s.gameday.runner import EXIT_SKIPPED, HEAL_GRACE_SECONDS

_DOW = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_FULL = (60, 24, 31, 12, 7)  # values a field has when it is "*"
VERIFY_TIMEOUT = 60


def unit_name(plan: Plan) -> str:
    return f"chaosk3s-gameday-{plan.name}"


def _not_expressible(plan: Plan, why: str) -> SpecError:
    return SpecError(
        f"schedule {plan.schedule.cron!r} of {plan.source} has no systemd "
        f"OnCalendar= equivalent: {why}; run `chaosk3s gameday schedule "
        f"{plan.source}` as a service instead")


def _field(values: list, full: int, width: int = 2) -> str:
    if values == ["*"] or len(set(values)) >= full:
        return "*"
    return ",".join(f"{int(v):0{width}d}" for v in sorted(set(values)))


def on_calendar(plan: Plan) -> str:
    """The OnCalendar= expression equivalent to the plan's cron."""
    cron = croniter(plan.schedule.cron, datetime(2000, 1, 1))
    if cron.nth_weekday_of_month:
        raise _not_expressible(plan, "'#' (nth weekday) is cron-only")
    fields = cron.expanded
    if any(isinstance(v, str) and v != "*" for f in fields for v in f):
        raise _not_expressible(plan, "'L' or 'W' is cron-only")
    minute, hour, dom, month, dow = (
        _field(values, full) for values, full in zip(fields, _FULL,
                                                     strict=True))
    if dom != "*" and dow != "*":
        raise _not_expressible(plan, "cron runs when the day of the month "
                               "OR the day of the week matches, systemd "
                               "only when both do")
    if dow != "*":
        dow = ",".join(dict.fromkeys(_DOW[int(v)] for v in sorted(
            set(fields[4])))) + " "
    else:
        dow = ""
    return (f"{dow}*-{month}-{dom} {hour}:{minute}:00 "
            f"{plan.schedule.timezone}")


def _quote(value: str) -> str:
    if any(c.isspace() or c in "\"'\\" for c in value):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def service_unit(plan: Plan) -> str:
    chaosk3s = Path(sys.executable).parent / "chaosk3s"
    return (
        f"[Unit]\nDescription=chaosk3s game day {plan.name}\n"
        f"Documentation=file://{plan.source}\n"
        f"Wants=network-online.target\nAfter=network-online.target\n\n"
        f"[Service]\nType=oneshot\n"
        f"WorkingDirectory={_quote(str(plan.source.parent))}\n"
        f"ExecStart={_quote(str(chaosk3s))} gameday run --only-in-window "
        f"{_quote(str(plan.source))}\n"
        f"# 3: outside the plan's windows, skipped; 1 (a deviation) and 2 "
        f"(an error)\n# mark the unit failed.\n"
        f"SuccessExitStatus={EXIT_SKIPPED}\n"
        f"# SIGTERM to the runner only: it stops its chaos run, which heals"
        f"\n# what it injected; then everything left is killed.\n"
        f"KillMode=mixed\nTimeoutStopSec={HEAL_GRACE_SECONDS + 60}\n")


def timer_unit(plan: Plan) -> str:
    return (
        f"[Unit]\nDescription=Schedule of chaosk3s game day {plan.name} "
        f"(cron {plan.schedule.cron} in {plan.schedule.timezone})\n\n"
        f"[Timer]\nOnCalendar={on_calendar(plan)}\nPersistent=true\n"
        f"AccuracySec=1s\nUnit={unit_name(plan)}.service\n\n"
        f"[Install]\nWantedBy=timers.target\n")


def write_systemd(plan: Plan, directory: Path) -> list[Path]:
    """Write NAME.service and NAME.timer into directory."""
    timer = timer_unit(plan)  # first: may refuse before writing anything
    directory.mkdir(parents=True, exist_ok=True)
    service_path = directory / f"{unit_name(plan)}.service"
    timer_path = directory / f"{unit_name(plan)}.timer"
    service_path.write_text(service_unit(plan))
    timer_path.write_text(timer)
    return [service_path, timer_path]


def systemd_analyze() -> str | None:
    return shutil.which("systemd-analyze")


def verify_units(paths: list[Path]) -> str:
    """`systemd-analyze verify` the units; EnvironmentProblem if it is
    not installed, SpecError with its output if it objects."""
    tool = systemd_analyze()
    if tool is None:
        raise EnvironmentProblem(
            "systemd-analyze is not installed (Debian package systemd): "
            "the units were written but not verified")
    done = subprocess.run([tool, "verify", *map(str, paths)],
                          capture_output=True, text=True, check=False,
                          timeout=VERIFY_TIMEOUT)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise SpecError(f"systemd-analyze verify rejected the units: "
                        f"{output}")
    return output


def calendar_next(expression: str, count: int) -> list[str]:
    """`systemd-analyze calendar` iterations (for checks and tests)."""
    tool = systemd_analyze()
    if tool is None:
        raise EnvironmentProblem("systemd-analyze is not installed")
    done = subprocess.run(
        [tool, "calendar", f"--iterations={count}", expression],
        capture_output=True, text=True, check=False, timeout=VERIFY_TIMEOUT,
        env={"LC_ALL": "C", "TZ": "UTC", "PATH": "/usr/bin:/bin"})
    if done.returncode != 0:
        raise SpecError(f"systemd-analyze calendar {expression!r}: "
                        f"{done.stderr.strip()}")
    return [line.split(":", 1)[1].strip() for line in
            done.stdout.splitlines()
            if line.strip().startswith(("Next elapse:", "Iter. #"))]
