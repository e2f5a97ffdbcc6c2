"""Load a Chaos Toolkit journal and normalise it for the report.

Tolerant by design: journals from any chaostoolkit 1.x, partial journals
(a killed run: no status, no end, fields missing) and plain runs without a
``chaosk3s`` section all load. Only a file that is not JSON, or JSON that
is not a journal, is refused, with an error naming the file; so is a file
over MAX_JOURNAL_BYTES.

Before anything is read from it, the journal is bounded
(chaosk3s.report.bounds) and redacted (chaosk3s.redact: secret-named
keys, secret-looking text and every value of its own secrets block,
wherever they appear, so neither a traceback nor an SVG tooltip can
show one).
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chaosk3s.errors import JournalError
from chaosk3s.redact import for_experiment, redact_journal, redact_secrets
from chaosk3s.report.bounds import MAX_JOURNAL_BYTES, Cuts, bound
from chaosk3s.report.k3sdata import K3sData, k3s_times, parse_k3s
from chaosk3s.report.values import (
    compact,
    mapping,
    number,
    parse_time,
    sequence,
    text,
)
from chaosk3s.report.verdict import Verdict, judge

_JOURNAL_KEYS = ("run", "steady_states", "chaoslib-version", "status",
                 "start", "rollbacks")
# The charts' time axis spans at most this: a journal whose times span
# years (a clock jump, a hand edit) is drawn from its run's start, and
# moments beyond are clipped to the edge.
MAX_AXIS_SECONDS = 7 * 24 * 3600


@dataclass
class Activity:
    name: str
    kind: str  # action | probe
    phase: str  # before | during | after | method | rollback
    status: str
    start: datetime | None
    end: datetime | None
    duration: float | None
    output: Any
    error: str  # the exception's last line, the summary people read
    traceback: str
    tolerance: str
    tolerance_met: bool | None
    provider: str
    arguments: Any
    background: bool = False

    @property
    def failed(self) -> bool:
        return self.status not in ("succeeded", "") or bool(self.error)


@dataclass
class SteadyState:
    met: bool | None
    probes: list[Activity]

    @property
    def start(self) -> datetime | None:
        times = [p.start for p in self.probes if p.start]
        return min(times) if times else None


@dataclass
class Journal:
    path: Path
    title: str
    description: str
    tags: list[str]
    status: str
    deviated: bool
    partial: bool
    start: datetime | None
    end: datetime | None
    duration: float | None
    chaoslib_version: str
    platform: str
    host: str
    rollback_strategy: str
    before: SteadyState | None
    after: SteadyState | None
    during: list[SteadyState]
    method: list[Activity]
    rollbacks: list[Activity]
    configuration: Any
    secrets: Any
    k3s: K3sData | None
    span: tuple[datetime, datetime]
    verdict: Verdict = field(default_factory=lambda: Verdict("", ""))
    # Written by the chaosk3s control: why it refused the run, and the
    # chaosk3s activities that raised ({"name", "phase", "error"}).
    refused: str | None = None
    failed_activities: list[dict] = field(default_factory=list)
    cuts: Cuts = field(default_factory=Cuts)  # what was cut to fit
    clipped: timedelta | None = None  # the times' whole span, if clipped
    # The cluster's abort switch, when it stopped the run: {"by", "at",
    # "reason"} (chaosk3s.consent).
    aborted: dict | None = None
    # The probe names the experiment's steady-state hypothesis declares
    # (a probe the journal lacks did not run: JUnit says so).
    hypothesis_probes: list[str] = field(default_factory=list)

    @property
    def activities(self) -> list[Activity]:
        states = [s for s in (self.before, *self.during, self.after) if s]
        return [p for s in states for p in s.probes] + self.method \
            + self.rollbacks


def load_journal(path: Path) -> Journal:
    """Read and normalise the journal at path; JournalError if it is not
    one."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_JOURNAL_BYTES:
            raise JournalError(
                f"{path}: too large to report ({size / 2**20:.0f} MB; the "
                f"limit is {MAX_JOURNAL_BYTES / 2**20:.0f} MB): a journal "
                f"this size was not written by one chaos run")
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise JournalError(f"{path}: cannot read: {exc.strerror or exc}"
                           ) from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise JournalError(f"{path}: not a journal: invalid JSON ({exc})"
                           ) from exc
    except RecursionError:
        raise JournalError(f"{path}: not a journal: its JSON is nested "
                           f"too deeply to read") from None
    return normalise(raw, path)


def check_journal(raw: Any, path: Path) -> None:
    if not isinstance(raw, dict):
        raise JournalError(f"{path}: not a journal: the JSON is a "
                           f"{type(raw).__name__}, not an object",
                           not_journal=True)
    if "method" in raw and "experiment" not in raw:
        raise JournalError(f"{path}: this is an experiment, not a journal: "
                           "run it with `chaos run` and report on the "
                           "journal.json it writes", not_journal=True)
    if not isinstance(raw.get("experiment"), dict) or not any(
            key in raw for key in _JOURNAL_KEYS):
        raise JournalError(f"{path}: not a Chaos Toolkit journal: no "
                           "'experiment' object with run data",
                           not_journal="experiment" not in raw)


def tolerance_text(tolerance: Any) -> str:
    """A tolerance as people say it: "== true", "in [0, 5]", ..."""
    if tolerance is None:
        return ""
    if isinstance(tolerance, list) and len(tolerance) == 2:
        return f"in [{compact(tolerance[0])}, {compact(tolerance[1])}]"
    if isinstance(tolerance, dict):
        kind = text(tolerance.get("type"), "tolerance")
        rest = {k: v for k, v in tolerance.items() if k != "type"}
        if kind == "probe":
            return f"probe {text(tolerance.get('name'), '?')}"
        return f"{kind} {compact(rest)}"
    return f"== {compact(tolerance)}"


def _provider(raw: dict) -> str:
    kind = text(raw.get("type"))
    if kind == "python":
        return f"python {text(raw.get('module'))}.{text(raw.get('func'))}"
    if kind == "http":
        return f"http {text(raw.get('method'), 'GET')} {text(raw.get('url'))}"
    if kind == "process":
        return f"process {text(raw.get('path'))}"
    return kind


def _error(raw: Any) -> tuple[str, str]:
    """(summary line, full traceback) from a run's exception field."""
    if isinstance(raw, list):
        trace = "".join(text(part) for part in raw)
    else:
        trace = text(raw)
    lines = [line for line in trace.strip().splitlines() if line.strip()]
    return (lines[-1].strip() if lines else ""), trace.strip()


def parse_activity(raw: Any, phase: str) -> Activity:
    raw = mapping(raw)
    spec = mapping(raw.get("activity"))
    provider = mapping(spec.get("provider"))
    error, trace = _error(raw.get("exception"))
    met = raw.get("tolerance_met")
    start = parse_time(raw.get("start"))
    end = parse_time(raw.get("end"))
    duration = number(raw.get("duration"))
    if duration is None and start and end:
        duration = (end - start).total_seconds()
    return Activity(
        name=text(spec.get("name"), "(unnamed)"),
        kind=text(spec.get("type"), "activity"), phase=phase,
        status=text(raw.get("status")), start=start, end=end,
        duration=duration, output=raw.get("output"), error=error,
        traceback=trace, tolerance=tolerance_text(spec.get("tolerance")),
        tolerance_met=met if isinstance(met, bool) else None,
        provider=_provider(provider),
        arguments=provider.get("arguments"),
        background=spec.get("background") is True)


def parse_state(raw: Any, phase: str) -> SteadyState | None:
    if not isinstance(raw, dict):
        return None
    met = raw.get("steady_state_met")
    return SteadyState(
        met=met if isinstance(met, bool) else None,
        probes=[parse_activity(p, phase) for p in sequence(raw.get("probes"))])


def _span(raw: dict, runs: list[Activity]
          ) -> tuple[tuple[datetime, datetime], timedelta | None]:
    """The time axis: the run's start to its end, stretched to cover every
    recorded moment (a partial journal has no end), but at most
    MAX_AXIS_SECONDS from the run's start; and the whole span when that
    clipped it."""
    start = parse_time(raw.get("start"))
    moments = [start, parse_time(raw.get("end"))]
    moments += [t for a in runs for t in (a.start, a.end)]
    moments += k3s_times(raw.get("chaosk3s"))
    known = [m for m in moments if m is not None]
    if not known:
        epoch = datetime.fromtimestamp(0, UTC)
        return (epoch, epoch), None
    low, high = min(known), max(known)
    limit = timedelta(seconds=MAX_AXIS_SECONDS)
    if high - low <= limit:
        return (low, high), None
    anchor = start or min((t for a in runs for t in (a.start, a.end) if t),
                          default=low)
    return (anchor, anchor + limit), high - low


def normalise(raw: Any, path: Path) -> Journal:
    """A Journal from parsed JSON; JournalError if it is not a journal."""
    check_journal(raw, path)
    cuts, redactor = Cuts(), for_experiment(raw["experiment"])
    raw = redact_journal(bound(raw, cuts, scrub=redactor.text), redactor)
    experiment = mapping(raw["experiment"])
    states = mapping(raw.get("steady_states"))
    method = [parse_activity(r, "method") for r in sequence(raw.get("run"))]
    rollbacks = [parse_activity(r, "rollback")
                 for r in sequence(raw.get("rollbacks"))]
    during = [s for s in (parse_state(d, "during")
                          for d in sequence(states.get("during"))) if s]
    status = text(raw.get("status"))
    runtime = mapping(experiment.get("runtime"))
    journal = Journal(
        path=path, title=text(experiment.get("title"), path.name),
        description=text(experiment.get("description")),
        tags=[text(t) for t in sequence(experiment.get("tags"))],
        status=status, deviated=raw.get("deviated") is True,
        partial=not status or parse_time(raw.get("end")) is None,
        start=parse_time(raw.get("start")), end=parse_time(raw.get("end")),
        duration=number(raw.get("duration")),
        chaoslib_version=text(raw.get("chaoslib-version")),
        platform=text(raw.get("platform")), host=text(raw.get("node")),
        rollback_strategy=text(
            mapping(runtime.get("rollbacks")).get("strategy"), "default"),
        before=parse_state(states.get("before"), "before"),
        after=parse_state(states.get("after"), "after"), during=during,
        method=method, rollbacks=rollbacks,
        configuration=experiment.get("configuration"),
        secrets=redact_secrets(experiment.get("secrets")),
        k3s=None, span=(datetime.min, datetime.min), cuts=cuts)
    section = mapping(raw.get("chaosk3s"))
    journal.refused = text(section.get("refused")) or None
    aborted = mapping(section.get("aborted"))
    journal.aborted = {key: text(aborted.get(key)) for key in (
        "by", "at", "reason")} if aborted else None
    journal.failed_activities = [
        {key: text(mapping(item).get(key)) for key in ("name", "phase",
                                                       "error")}
        for item in sequence(section.get("failed_activities"))]
    hypothesis = mapping(experiment.get("steady-state-hypothesis"))
    journal.hypothesis_probes = [
        text(mapping(p).get("name"), "(unnamed)")
        for p in sequence(hypothesis.get("probes"))]
    journal.span, journal.clipped = _span(raw, journal.activities)
    journal.k3s = parse_k3s(raw.get("chaosk3s"), journal.span)
    journal.verdict = judge(journal)
    return journal
