"""A game-day plan: YAML → validated, frozen dataclasses.

Everything is checked before anything runs; every error names the field
and says what to write instead. Paths (experiments, an inventory target,
report_dir) are relative to the plan file, so a plan behaves the same
whatever the working directory (a systemd unit, a CronJob, a shell).
"""

import json
import re
from dataclasses import dataclass
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter

from chaosk3s.errors import SpecError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,50}[a-z0-9])?$")
HOURS_RE = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")
EVENTS = ("start", "deviation", "finish")
DEFAULT_CATCH_UP_MINUTES = 60
_KEYS = {"name", "target", "experiments", "schedule", "windows",
         "stop_on_deviation", "report_dir", "retention", "webhooks"}


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

    def webhook(self, event: str) -> str | None:
        return dict(self.webhooks).get(event)


def _fail(source: Path, field: str, message: str) -> SpecError:
    return SpecError(f"game-day plan {source}: `{field}` {message}")


def load_plan(path: str | Path) -> Plan:
    source = Path(path).resolve()
    try:
        raw = yaml.safe_load(source.read_text())
    except OSError as exc:
        raise SpecError(f"cannot read game-day plan {source}: "
                        f"{exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"game-day plan {source} is not valid YAML: {exc}"
                        ) from None
    return parse_plan(raw, source)


def parse_plan(raw: object, source: Path) -> Plan:
    if not isinstance(raw, dict):
        raise SpecError(f"game-day plan {source} must be a YAML mapping "
                        f"with name, target, experiments and schedule")
    unknown = sorted(set(map(str, raw)) - _KEYS)
    if unknown:
        raise _fail(source, unknown[0], f"is not a plan field; the fields "
                    f"are {', '.join(sorted(_KEYS))}")
    base = source.parent
    return Plan(
        name=_name(raw.get("name"), source),
        source=source,
        target=_target(raw.get("target", "lab"), base, source),
        experiments=_experiments(raw.get("experiments"), base, source),
        schedule=_schedule(raw.get("schedule"), raw.get("windows"), source),
        stop_on_deviation=_bool(raw.get("stop_on_deviation", True),
                                "stop_on_deviation", source),
        report_dir=base / _text(raw.get("report_dir", "reports"),
                                "report_dir", source),
        retention=_retention(raw.get("retention"), source),
        webhooks=_webhooks(raw.get("webhooks"), source))


def _text(value: object, field: str, source: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(source, field, f"must be a non-empty string, not "
                    f"{value!r}")
    return value.strip()


def _bool(value: object, field: str, source: Path) -> bool:
    if not isinstance(value, bool):
        raise _fail(source, field, f"must be true or false, not {value!r}")
    return value


def _name(value: object, source: Path) -> str:
    name = _text(value, "name", source)
    if not NAME_RE.match(name):
        raise _fail(source, "name", f"{name!r} must be lower-case letters, "
                    f"digits and dashes (it names a report directory and "
                    f"Kubernetes objects), e.g. weekly-split-role")
    return name


def _target(value: object, base: Path, source: Path) -> str:
    target = _text(value, "target", source)
    if target == "lab":
        return target
    path = (base / Path(target).expanduser()).resolve()
    if not path.is_file():
        raise _fail(source, "target", f"is neither `lab` nor an inventory "
                    f"file: {path} does not exist")
    return str(path)


def _experiments(value: object, base: Path, source: Path
                 ) -> tuple[Experiment, ...]:
    if not isinstance(value, list) or not value:
        raise _fail(source, "experiments", "must be a non-empty list of "
                    "{path: EXPERIMENT.json, vars: {KEY: VALUE}}")
    return tuple(_experiment(item, index, base, source)
                 for index, item in enumerate(value))


def _experiment(item: object, index: int, base: Path, source: Path
                ) -> Experiment:
    field = f"experiments[{index}]"
    if isinstance(item, str):
        item = {"path": item}
    if not isinstance(item, dict) or set(item) - {"path", "vars"}:
        raise _fail(source, field, "must be a path or a mapping with `path`"
                    " and optional `vars`")
    path = base / _text(item.get("path"), f"{field}.path", source)
    declared = _declared_configuration(path, f"{field}.path", source)
    raw_vars = item.get("vars") or {}
    if not isinstance(raw_vars, dict):
        raise _fail(source, f"{field}.vars", "must be a mapping KEY: VALUE")
    checked = []
    for key, var in raw_vars.items():
        checked.append(_var(str(key), var, declared, f"{field}.vars.{key}",
                            path, source))
    return Experiment(path=path, vars=tuple(checked),
                      declared=frozenset(declared))


def _declared_configuration(path: Path, field: str, source: Path) -> set:
    try:
        experiment = json.loads(path.read_text())
    except OSError as exc:
        raise _fail(source, field, f"cannot be read: {path}: "
                    f"{exc.strerror or exc}") from None
    except ValueError as exc:
        raise _fail(source, field, f"is not a JSON experiment: {path}: "
                    f"{exc}") from None
    if not isinstance(experiment, dict) or "method" not in experiment:
        raise _fail(source, field, f"{path} is not a Chaos Toolkit "
                    f"experiment (no `method`)")
    return set(experiment.get("configuration") or {})


def _var(key: str, value: object, declared: set, field: str, path: Path,
         source: Path) -> tuple[str, str | int | float]:
    # `chaos run --var` only overrides keys the experiment declares.
    if key not in declared:
        raise _fail(source, field, f"is not a configuration key of "
                    f"{path.name}; it declares "
                    f"{', '.join(sorted(declared)) or 'none'}")
    if isinstance(value, bool):
        # `--var k=false` would arrive as the (true) string "false".
        raise _fail(source, field, "is a boolean, which `chaos run --var` "
                    "cannot pass; leave the experiment's default or use a "
                    "number or string the experiment understands")
    if not isinstance(value, str | int | float):
        raise _fail(source, field, f"must be a string or a number, not "
                    f"{type(value).__name__}")
    return key, value


def _schedule(value: object, windows: object, source: Path) -> Schedule:
    if not isinstance(value, dict):
        raise _fail(source, "schedule", "must be a mapping {cron: '0 10 * * "
                    "2', timezone: Europe/Berlin}")
    extra = set(value) - {"cron", "timezone", "catch_up_minutes"}
    if extra:
        raise _fail(source, f"schedule.{sorted(extra)[0]}", "is not a "
                    "schedule field (cron, timezone, catch_up_minutes)")
    cron = _text(value.get("cron"), "schedule.cron", source)
    if len(cron.split()) != 5 and not cron.startswith("@") or \
            not croniter.is_valid(cron):
        raise _fail(source, "schedule.cron", f"{cron!r} is not a 5-field "
                    f"cron expression (minute hour day-of-month month "
                    f"day-of-week), e.g. '0 10 * * 2'")
    zone = _text(value.get("timezone"), "schedule.timezone", source)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(source, "schedule.timezone", f"{zone!r} is not an IANA "
                    f"time zone, e.g. Europe/Berlin or UTC") from None
    catch_up = value.get("catch_up_minutes", DEFAULT_CATCH_UP_MINUTES)
    if isinstance(catch_up, bool) or not isinstance(catch_up, int) or \
            catch_up < 0:
        raise _fail(source, "schedule.catch_up_minutes", "must be a whole "
                    "number of minutes >= 0 (0: never catch up)")
    return Schedule(cron, zone, _windows(windows, source), catch_up)


def _windows(value: object, source: Path) -> tuple[Window, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise _fail(source, "windows", "must be a list of {days: [mon, "
                    "tue], hours: '09:00-17:00'} (omit it to allow any "
                    "time)")
    return tuple(_window(item, f"windows[{index}]", source)
                 for index, item in enumerate(value))


def _window(item: object, field: str, source: Path) -> Window:
    if not isinstance(item, dict) or set(item) - {"days", "hours"}:
        raise _fail(source, field, "must be a mapping with `days` and "
                    "`hours`")
    days = item.get("days", list(DAYS))
    if not isinstance(days, list) or not days or any(
            str(day).lower()[:3] not in DAYS for day in days):
        raise _fail(source, f"{field}.days", f"must be a list of days "
                    f"({', '.join(DAYS)}), not {days!r}")
    hours = str(item.get("hours", "00:00-24:00"))
    match = HOURS_RE.match(hours)
    numbers = [int(g) for g in match.groups()] if match else []
    if not match or numbers[0] > 23 or numbers[1] > 59 or numbers[3] > 59 \
            or numbers[2] > 24 or (numbers[2] == 24 and numbers[3]):
        raise _fail(source, f"{field}.hours", f"{hours!r} must be "
                    f"'HH:MM-HH:MM' in the plan's time zone, e.g. "
                    f"'09:00-17:00' (end excluded; '22:00-06:00' crosses "
                    f"midnight)")
    end = None if numbers[2] == 24 else dtime(numbers[2], numbers[3])
    return Window(frozenset(DAYS.index(str(d).lower()[:3]) for d in days),
                  dtime(numbers[0], numbers[1]), end)


def _retention(value: object, source: Path) -> Retention:
    if value is None:
        return Retention()
    if not isinstance(value, dict) or set(value) - {"keep_runs",
                                                    "keep_days"}:
        raise _fail(source, "retention", "must be a mapping with keep_runs "
                    "and/or keep_days")
    runs, days = value.get("keep_runs"), value.get("keep_days")
    if runs is not None and (isinstance(runs, bool) or
                             not isinstance(runs, int) or runs < 1):
        raise _fail(source, "retention.keep_runs", f"must be a whole "
                    f"number >= 1, not {runs!r}")
    if days is not None and (isinstance(days, bool) or
                             not isinstance(days, int | float) or days <= 0):
        raise _fail(source, "retention.keep_days", f"must be a number of "
                    f"days > 0, not {days!r}")
    return Retention(runs, days)


def _webhooks(value: object, source: Path) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise _fail(source, "webhooks", f"must be a mapping of "
                    f"{', '.join(EVENTS)} to URLs")
    hooks = []
    for event, url in value.items():
        if event not in EVENTS:
            raise _fail(source, f"webhooks.{event}", f"is not an event; "
                        f"the events are {', '.join(EVENTS)}")
        if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+",
                                                    url):
            # The value is not shown: a webhook URL is a credential.
            raise _fail(source, f"webhooks.{event}", "must be an http:// "
                        "or https:// URL (the value given is not one)")
        hooks.append((str(event), url))
    return tuple(hooks)
