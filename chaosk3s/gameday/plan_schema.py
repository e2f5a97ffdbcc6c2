"""The game-day plan's schema: what each key may hold (chaosk3s.schema).

What needs the file system (the target inventory, the experiments and the
configuration keys they declare) is checked after it, in
chaosk3s.gameday.plan.
"""

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field

from chaosk3s.gameday.cron import cron_problem
from chaosk3s.schema import NonEmpty, Strict, shown

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# fullmatch: `$` alone would let a trailing newline through
NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,50}[a-z0-9])?")
HOURS_RE = re.compile(r"(\d\d):(\d\d)-(\d\d):(\d\d)")
EVENTS = ("start", "deviation", "finish")
# json: chaosk3s's own payload; slack and teams: messages those chat
# tools' incoming webhooks render (chaosk3s.gameday.chat)
WEBHOOK_FORMATS = ("json", "slack", "teams")
DEFAULT_CATCH_UP_MINUTES = 60
# Bounds that keep every date computed from them inside Python's range
# (keep_days: 1e10 used to overflow at the end of a game day, after its
# experiments had run).
MAX_KEEP_DAYS = 36500  # a century
MAX_CATCH_UP_MINUTES = 7 * 24 * 60  # a week late is not "catching up"


def _name(value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise ValueError(f"{value!r} must be lower-case letters, digits and "
                         f"dashes (it names a report directory and "
                         f"Kubernetes objects), e.g. weekly-split-role")
    return value


def _var(value: Any) -> str | int | float:
    # `chaos run --var k=false` would pass the (true) string "false".
    if isinstance(value, bool):
        raise ValueError("is a boolean, which `chaos run --var` cannot "
                         "pass; leave the experiment's default or use a "
                         "number or string the experiment understands")
    if not isinstance(value, str | int | float):
        raise ValueError(f"must be a string or a number, not "
                         f"{shown(value)}")
    return value


def _bare_path(value: Any) -> Any:
    return {"path": value} if isinstance(value, str) else value


def _cron(cron: str) -> str:
    problem = cron_problem(cron)
    if problem:
        raise ValueError(problem)
    return cron


def _zone(zone: str) -> str:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{zone!r} is not an IANA time zone, e.g. "
                         f"Europe/Berlin or UTC") from None
    return zone


def _day(day: str) -> str:
    if day.lower()[:3] not in DAYS:
        raise ValueError(f"{day!r} is not a day ({', '.join(DAYS)})")
    return day.lower()[:3]


def _hours(hours: str) -> str:
    match = HOURS_RE.fullmatch(hours)
    numbers = [int(g) for g in match.groups()] if match else []
    if not match or numbers[0] > 23 or numbers[1] > 59 or numbers[3] > 59 \
            or numbers[2] > 24 or (numbers[2] == 24 and numbers[3]):
        raise ValueError(f"{hours!r} must be 'HH:MM-HH:MM' in the plan's "
                         f"time zone, e.g. '09:00-17:00' (end excluded; "
                         f"'22:00-06:00' crosses midnight)")
    return hours


def _url(url: str) -> str:
    if not re.match(r"^https?://[^\s/]+", url):
        # The value is not shown: a webhook URL is a credential.
        raise ValueError("must be an http:// or https:// URL (the value "
                         "given is not one)")
    return url


Var = Annotated[Any, AfterValidator(_var)]
Url = Annotated[str, AfterValidator(_url)]


class ExperimentSpec(Strict):
    path: NonEmpty
    vars: dict[str, Var] = None


class ScheduleSpec(Strict):
    cron: Annotated[NonEmpty, AfterValidator(_cron)]
    timezone: Annotated[NonEmpty, AfterValidator(_zone)]
    catch_up_minutes: Annotated[int, Field(
        ge=0, le=MAX_CATCH_UP_MINUTES)] = DEFAULT_CATCH_UP_MINUTES


class WindowSpec(Strict):
    days: Annotated[list[Annotated[str, AfterValidator(_day)]],
                    Field(min_length=1)] = list(DAYS)
    hours: Annotated[str, AfterValidator(_hours)] = "00:00-24:00"


class RetentionSpec(Strict):
    keep_runs: Annotated[int, Field(ge=1)] = None
    keep_days: Annotated[float, Field(gt=0, le=MAX_KEEP_DAYS)] = None


class WebhookSpec(Strict):
    """A webhook with its message format (a bare URL: format json)."""

    url: Url
    format: Literal[WEBHOOK_FORMATS] = "json"


def _bare_url(value: Any) -> Any:
    """A bare URL is checked here, so an error names the event's key."""
    return {"url": _url(value)} if isinstance(value, str) else value


Webhook = Annotated[WebhookSpec, BeforeValidator(_bare_url)]


class WebhooksSpec(Strict):
    start: Webhook = None
    deviation: Webhook = None
    finish: Webhook = None


class PlanSpec(Strict):
    name: Annotated[NonEmpty, AfterValidator(_name)]
    target: NonEmpty = "lab"
    experiments: Annotated[list[Annotated[
        ExperimentSpec, BeforeValidator(_bare_path)]], Field(min_length=1)]
    schedule: ScheduleSpec
    windows: Annotated[list[WindowSpec], Field(min_length=1)] = None
    stop_on_deviation: bool = True
    report_dir: NonEmpty = "reports"
    retention: RetentionSpec = None
    webhooks: WebhooksSpec = None
