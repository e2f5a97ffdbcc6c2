"""Fault ttls against the time an experiment holds its faults, read
statically, for chaosk3s.experiment_check.

A partition expires on its nodes after its `ttl`, and a stop without a
`duration` starts again by itself after the run's `fault_ttl`: safety
nets for a runner that dies. If the experiment holds the fault longer
than that before its own heal (heal_partitions, start_k3s), the node
ends it early and the run would report a hold it did not do. So the
seconds an experiment certainly spends between a fault and its heal are
added up, in the order Chaos Toolkit runs them (method, the steady state
after it, rollbacks): pauses, the `seconds` of `nodes_not_ready_within`
and `api_unanswered_within`, and a `sleep N` process. Background
activities, references and timeouts (an upper bound, not a hold) count
nothing, so what is refused here would certainly expire; what is not may
still expire at run time, where heal_partitions and start_k3s fail the
run naming the fault.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass

from chaoslib import substitute

from chaosk3s.arguments import coerce

DEFAULT_FAULT_TTL = 300.0  # seconds; a stop's node-side start without one
# chaosk3s probes that last their argument's seconds, whatever they see
HOLDING = {"nodes_not_ready_within": "seconds", "ready_flaps": "seconds",
           "api_unanswered_within": "seconds"}


@dataclass
class Held:
    """A fault the experiment holds: what, its ttl, seconds held so far."""

    kind: str  # partition | stop
    key: str  # the stop's node selector ("" for a partition)
    where: str
    ttl: float
    origin: str  # " (the value of variable fault_ttl)" or ""
    seconds: float = 0.0


def steps(experiment: dict) -> Iterator[tuple[str, dict]]:
    """(phase, activity) in the order a run plays them, after the steady
    state before: the method, the steady state after, the rollbacks."""
    for activity in experiment.get("method") or []:
        yield "method", activity
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    for probe in hypothesis.get("probes") or []:
        yield "steady-state", probe
    for activity in experiment.get("rollbacks") or []:
        yield "rollback", activity


def _number(value: object) -> float:
    """A finite number of seconds, else 0 (chaos validates pauses and
    the arguments are checked before: a bad one holds nothing here)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) and number > 0 else 0.0


def _pause(activity: dict, when: str, configuration: dict,
           secrets: dict) -> float:
    pauses = activity.get("pauses") or {}
    if not isinstance(pauses, dict) or when not in pauses:
        return 0.0
    return _number(substitute(pauses[when], configuration, secrets))


def _lasts(activity: dict, func, arguments: dict) -> float:
    """Seconds the activity itself certainly lasts."""
    if activity.get("background"):
        return 0.0
    if func is not None:
        argument = HOLDING.get(func.__name__)
        return _number(arguments.get(argument)) if argument else 0.0
    provider = activity.get("provider") or {}
    if provider.get("type") == "process" and str(
            provider.get("path", "")).rsplit("/", 1)[-1] == "sleep":
        return _number(str(provider.get("arguments", "")).strip())
    return 0.0


def check_holds(experiment: dict, configuration: dict, secrets: dict,
                chaosk3s_function, where, origin) -> list[str]:
    """One line per fault whose ttl is not above the seconds held before
    its heal (helpers from chaosk3s.experiment_check)."""
    ttl = configuration.get("fault_ttl")
    if ttl not in (None, "") and not _number(ttl):
        return [f"configuration fault_ttl={ttl!r} is invalid: expected a "
                f"number greater than 0 (the seconds after which a fault "
                f"ends on the node by itself)"]
    held: list[Held] = []
    problems = []
    for phase, activity in steps(experiment):
        if not isinstance(activity, dict):
            continue
        func = chaosk3s_function(activity) if "provider" in activity \
            else None
        raw = ((activity.get("provider") or {}).get("arguments")
               if func else None) or {}
        args = coerce(func, substitute(raw, configuration, secrets) or {},
                      with_defaults=True) if func else {}
        _add(held, _pause(activity, "before", configuration, secrets))
        name = func.__name__ if func else ""
        if name in ("heal_partitions", "start_k3s"):
            problems += _closed(held, name, args, where(phase, activity))
        _open(held, name, args, where(phase, activity), raw,
              configuration, origin)
        _add(held, _lasts(activity, func, args) + _pause(
            activity, "after", configuration, secrets))
    return problems


def _add(held: list[Held], seconds: float) -> None:
    for fault in held:
        fault.seconds += seconds


def _open(held: list[Held], name: str, args: dict, where: str, raw: dict,
          configuration: dict, origin) -> None:
    if name.startswith(("partition_", "degrade_")):  # links: same heal
        held.append(Held("partition", "", where, float(args["ttl"]),
                         origin(raw, "ttl")))
    elif name == "stop_k3s" and not float(args["duration"]):
        ttl = configuration.get("fault_ttl")
        held.append(Held("stop", str(args["nodes"]), where,
                         _number(ttl) or DEFAULT_FAULT_TTL,
                         " (the value of variable fault_ttl)" if ttl else
                         " (the default fault_ttl; declare fault_ttl to "
                         "change it)"))


def _closed(held: list[Held], name: str, args: dict,
            where: str) -> list[str]:
    """Close what this heal closes; a line for each that expired first.
    A heal of one fault_id closes every partition, unchecked: which one
    it names is not known before the run."""
    if name == "heal_partitions":
        closing = [f for f in held if f.kind == "partition"]
        checked = [] if args.get("fault_id") else closing
    else:
        closing = checked = [f for f in held if f.kind == "stop" and
                             f.key == str(args["nodes"])]
    for fault in closing:
        held.remove(fault)
    return [f"{fault.where}: its {fault.kind} expires on the node after "
            f"{fault.ttl:g} s{fault.origin}, but the experiment holds it "
            f"at least {fault.seconds:g} s before {where}: raise it above "
            f"{fault.seconds:g} s, or the node ends the {fault.kind} early "
            f"and the run reports a hold it did not do"
            for fault in checked if fault.ttl <= fault.seconds]
