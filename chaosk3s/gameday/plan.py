"""A game-day plan: YAML → validated, frozen dataclasses.

Everything is checked before anything runs: first the schema
(chaosk3s.gameday.plan_schema: every key's type and range), then what
needs the file system (the target inventory, each experiment and the
configuration keys it declares); every error is one line that names the
field and says what to write instead, every error at once. Paths
(experiments, an inventory target, report_dir) are relative to the plan
file, so a plan behaves the same whatever the working directory (a
systemd unit, a CronJob, a shell).
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

from chaosk3s.errors import SpecError
from chaosk3s.gameday.plan_schema import (
    DAYS,
    DEFAULT_CATCH_UP_MINUTES,
    HOURS_RE,
    ExperimentSpec,
    PlanSpec,
    WindowSpec,
)
from chaosk3s.inventory import load_target
from chaosk3s.schema import load_yaml, one_line, validate


@dataclass(frozen=True)
class Experiment:
    path: Path
    vars: tuple[tuple[str, str | int | float], ...] = ()
    declared: frozenset[str] = frozenset()  # its configuration keys


@dataclass(frozen=True)
class Window:
    """Days of the week (0 = Monday) and [start, end) local hours; an end
    at or before the start crosses midnight (22:00-06:00)."""
    days: frozenset[int]
    start: dtime
    end: dtime | None  # None: until midnight (24:00)


@dataclass(frozen=True)
class Schedule:
    cron: str
    timezone: str
    windows: tuple[Window, ...] = ()
    catch_up_minutes: int = DEFAULT_CATCH_UP_MINUTES

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Retention:
    keep_runs: int | None = None
    keep_days: float | None = None


@dataclass(frozen=True)
class Plan:
    name: str
    source: Path
    target: str  # `lab` or an absolute inventory path
    experiments: tuple[Experiment, ...]
    schedule: Schedule
    stop_on_deviation: bool
    report_dir: Path
    retention: Retention
    webhooks: tuple[tuple[str, str], ...] = ()  # (event, url)
    webhook_formats: tuple[tuple[str, str], ...] = ()  # (event, format)

    def webhook(self, event: str) -> str | None:
        return dict(self.webhooks).get(event)

    def webhook_format(self, event: str) -> str:
        return dict(self.webhook_formats).get(event, "json")


def load_plan(path: str | Path) -> Plan:
    source = Path(path).resolve()
    return parse_plan(load_yaml(source, f"game-day plan {source}"), source)


def parse_plan(raw: object, source: Path) -> Plan:
    """The plan, or SpecError with one line per problem."""
    what = f"game-day plan {source}"
    spec: PlanSpec = validate(PlanSpec, raw, what)
    base = source.parent
    problems: list[str] = []
    target = _target(spec.target, base, problems)
    experiments = []
    for index, item in enumerate(spec.experiments):
        experiments.append(_experiment(item, f"experiments[{index}]", base,
                                       problems))
    schedule = Schedule(spec.schedule.cron, spec.schedule.timezone, tuple(
        _window(w) for w in spec.windows or ()),
        spec.schedule.catch_up_minutes)
    from chaosk3s.gameday.schedule import windows_problem  # imports Plan
    never = windows_problem(schedule, datetime.now(UTC))
    if never:
        problems.append(never)
    if problems:
        raise SpecError("\n".join(f"{what}: {line}" for line in problems))
    retention = spec.retention
    hooks = list(spec.webhooks.model_dump(exclude_none=True).items()
                 if spec.webhooks else ())
    return Plan(
        name=spec.name, source=source, target=target,
        experiments=tuple(experiments), schedule=schedule,
        stop_on_deviation=spec.stop_on_deviation,
        report_dir=base / spec.report_dir.strip(),
        retention=Retention(retention.keep_runs, retention.keep_days)
        if retention else Retention(),
        webhooks=tuple((event, hook["url"]) for event, hook in hooks),
        webhook_formats=tuple((event, hook["format"])
                              for event, hook in hooks))


def _target(target: str, base: Path, problems: list[str]) -> str:
    target = target.strip()
    if target == "lab":
        return target
    path = (base / Path(target).expanduser()).resolve()
    if not path.is_file():
        problems.append(f"`target` is neither `lab` nor an inventory file: "
                        f"{one_line(path)} does not exist")
        return str(path)
    try:  # a game day of refused runs is refused as a whole, up front
        load_target(str(path))
    except SpecError as exc:
        problems.extend(f"`target` {line}" for line in str(exc).splitlines())
    return str(path)


def _experiment(item: ExperimentSpec, field: str, base: Path,
                problems: list[str]) -> Experiment:
    path = base / item.path.strip()
    given = item.vars or {}
    declared = _declared_configuration(path, f"{field}.path", problems)
    if declared is None:  # unreadable: said once, not once per variable
        return Experiment(path=path, vars=tuple(given.items()))
    keys = ", ".join(sorted(declared)) or "none"
    for key in sorted(set(given) - declared):
        # `chaos run --var` only overrides keys the experiment declares.
        problems.append(f"`{field}.vars.{one_line(key)}` is not a "
                        f"configuration key of {one_line(path.name)}; it "
                        f"declares {one_line(keys)}")
    return Experiment(path=path, vars=tuple(given.items()),
                      declared=frozenset(declared))


def _declared_configuration(path: Path, field: str,
                            problems: list[str]) -> set | None:
    try:
        experiment = json.loads(path.read_text())
    except OSError as exc:
        problems.append(f"`{field}` cannot be read: {one_line(path)}: "
                        f"{exc.strerror or exc}")
        return None
    except ValueError as exc:
        problems.append(f"`{field}` is not a JSON experiment: "
                        f"{one_line(path)}: {one_line(exc)}")
        return None
    if not isinstance(experiment, dict) or "method" not in experiment:
        problems.append(f"`{field}` {one_line(path)} is not a Chaos "
                        f"Toolkit experiment (no `method`)")
        return None
    configuration = experiment.get("configuration") or {}
    return set(configuration) if isinstance(configuration, dict) else set()


def _window(spec: WindowSpec) -> Window:
    """Days and hours as the schema checked them ('24:00': midnight)."""
    start_h, start_m, end_h, end_m = map(
        int, HOURS_RE.fullmatch(spec.hours).groups())
    end = None if end_h == 24 else dtime(end_h, end_m)
    return Window(frozenset(DAYS.index(d) for d in spec.days),
                  dtime(start_h, start_m), end)
