"""What a run of an experiment would be refused for, found before
anything runs: shared by the chaosk3s control and `chaosk3s plan`.

- Every chaosk3s activity's arguments (steady-state probes, method,
  rollbacks), after Chaos Toolkit's own `${name}` substitution, through
  the same conversion and checks the activities run (chaosk3s.arguments).
- Every `--var` named on the command line must be a configuration key of
  the experiment: Chaos Toolkit silently drops the others
  (chaoslib.configuration.load_configuration reads only declared keys),
  so a misspelt one would run the default. Keys of a `--var-file` that
  the experiment does not use are only warned about: such files are
  often shared by several experiments.
- No fault may be held, before its own heal, longer than it lives on
  the node (chaosk3s.holds): the node would end it early and the run
  would report a hold it did not do.
- Once the cluster is known, every node selector must match a node, and
  the faults of the method and rollbacks, played in order, must stay
  within the inventory's blast-radius caps (chaosk3s.blast): per fault,
  and per run with the faults the steps before left open.
"""

import difflib
import importlib
from collections.abc import Callable, Iterator

import click
from chaoslib import merge_vars, substitute

from chaosk3s.arguments import CHECKS_ATTRIBUTE, NODES, ArgumentError, coerce
from chaosk3s.blast import Caps, check_blast
from chaosk3s.errors import SpecError
from chaosk3s.holds import check_holds
from chaosk3s.model import Topology
from chaosk3s.selectors import select

# The argument naming the nodes each action faults (chaosk3s.blast):
# a partition's rules go on its group (a degradation's tc also on its
# peers, unless direction is "to"); start_k3s and heal_partitions heal,
# they fault nothing.
FAULTED_BY = {"partition_roles": "group", "partition_nodes": "selector",
              "degrade_links": "group", "degrade_nodes": "selector",
              "restart_k3s": "nodes", "stop_k3s": "nodes",
              "reboot_nodes": "nodes", "upgrade_k3s": "nodes"}


def activities(experiment: dict) -> Iterator[tuple[str, dict]]:
    """(phase, activity) for every activity the experiment may run."""
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    for probe in hypothesis.get("probes") or []:
        yield "steady-state", probe
        tolerance = probe.get("tolerance")
        if isinstance(tolerance, dict) and tolerance.get("type") == "probe":
            yield "tolerance", tolerance
    for phase, key in (("method", "method"), ("rollback", "rollbacks")):
        for activity in experiment.get(key) or []:
            if isinstance(activity, dict) and "provider" in activity:
                yield phase, activity  # a {"ref": ...} is checked where
                # it is defined


def chaosk3s_function(activity: dict) -> Callable | None:
    """The chaosk3s activity function an activity calls, or None for
    anything else (other extensions, http or process providers)."""
    provider = activity.get("provider") or {}
    module = str(provider.get("module") or "")
    if provider.get("type") != "python" or not module.startswith(
            "chaosk3s."):
        return None
    try:
        func = getattr(importlib.import_module(module),
                       str(provider.get("func")))
    except (ImportError, AttributeError):
        return None  # `chaos validate` (run before controls) says so
    return func if hasattr(func, CHECKS_ATTRIBUTE) else None


def _origin(raw: dict, argument: str | None) -> str:
    value = raw.get(argument) if argument else None
    if isinstance(value, str) and value.startswith("${") and \
            value.endswith("}"):
        return f" (the value of variable {value[2:-1]})"
    return ""


def _each_call(experiment: dict
               ) -> Iterator[tuple[str, dict, Callable, dict]]:
    for phase, activity in activities(experiment):
        func = chaosk3s_function(activity)
        if func is not None:
            raw = activity["provider"].get("arguments") or {}
            yield phase, activity, func, raw


def _where(phase: str, activity: dict) -> str:
    return f"{phase} activity {activity.get('name', '(unnamed)')!r}"


def check_arguments(experiment: dict, configuration: dict,
                    secrets: dict | None = None) -> list[str]:
    """One line per chaosk3s activity argument a run would refuse."""
    problems = []
    for phase, activity, func, raw in _each_call(experiment):
        given = substitute(raw, configuration, secrets or {}) or {}
        try:
            coerce(func, given)
        except ArgumentError as exc:
            problems.append(f"{_where(phase, activity)}: {exc}"
                            f"{_origin(raw, exc.argument)}")
    return problems or check_holds(experiment, configuration,
                                   secrets or {}, chaosk3s_function,
                                   _where, _origin)


def check_selectors(experiment: dict, configuration: dict,
                    secrets: dict | None, topology: Topology) -> list[str]:
    """One line per node selector (given or default) that matches no node
    of this cluster; call after check_arguments found nothing."""
    problems = []
    for phase, activity, func, raw in _each_call(experiment):
        given = substitute(raw, configuration, secrets or {}) or {}
        arguments = coerce(func, given, with_defaults=True)
        for name, check in getattr(func, CHECKS_ATTRIBUTE).items():
            if check is NODES:
                try:
                    select(topology, arguments[name])
                except SpecError as exc:
                    problems.append(f"{_where(phase, activity)}: argument "
                                    f"{name}: {exc}{_origin(raw, name)}")
    return problems


def check_blast_radius(experiment: dict, configuration: dict,
                       secrets: dict | None, topology: Topology, caps: Caps,
                       labelled: Callable[[str], list[str]]) -> list[str]:
    """One line per method or rollback step over a blast-radius cap,
    the steps played in order: a partition holds its group until
    heal_partitions, a stop its nodes until start_k3s; restarts and
    reboots hold theirs while they last (one node at a time with
    one_at_a_time; upgrades always one at a time). labelled(selector)
    names a label selector's nodes. Call after check_selectors found nothing."""
    problems, held = [], {"partition": set(), "stop": set()}
    for phase, activity, func, raw in _each_call(experiment):
        if phase not in ("method", "rollback"):
            continue
        name = func.__name__
        args = coerce(func, substitute(raw, configuration, secrets or {})
                      or {}, with_defaults=True)
        if name == "heal_partitions":
            held["partition"].clear()
        elif name == "start_k3s":
            held["stop"] -= {n.name for n in select(topology,
                                                     args["nodes"])}
        if name not in FAULTED_BY:
            continue
        nodes = _faulted(name, args, topology, labelled)
        try:
            _play(caps, topology, name, nodes, args.get(
                "one_at_a_time", name == "upgrade_k3s"),  # always one
                  held["partition"] | held["stop"])
        except SpecError as exc:  # refused: holds nothing
            problems.append(f"{_where(phase, activity)}: {exc}")
            continue
        if name.startswith(("partition", "degrade")):
            held["partition"].update(nodes)
        elif name == "stop_k3s":
            held["stop"].update(nodes)
    return problems


def _faulted(name: str, args: dict, topology: Topology,
             labelled: Callable[[str], list[str]]) -> list[str]:
    """The nodes an action would act on; those the inventory gives no
    transport for are left out, as the actions leave them."""
    argument = args[FAULTED_BY[name]]
    chosen = _chosen(name, argument, topology, labelled)
    if name.startswith("degrade") and args["direction"] != "to":
        chosen += _chosen(name, args["peer_selector" if name ==
                                     "degrade_nodes" else "peers"],
                          topology, labelled)
    reachable = {n.name for n in topology.nodes if n.access}
    return [n for n in dict.fromkeys(chosen) if n in reachable]


def _chosen(name: str, argument: str, topology: Topology,
            labelled: Callable[[str], list[str]]) -> list[str]:
    if name.endswith("_nodes") and name != "reboot_nodes":
        return labelled(argument)
    return [n.name for n in select(topology, argument)]


def _play(caps: Caps, topology: Topology, name: str, nodes: list[str],
          one_at_a_time: bool | None, held: set[str]) -> None:
    """check_blast for one step, node by node when one at a time."""
    open_now = [{"nodes": sorted(held)}]
    for step in ([[n] for n in nodes] if one_at_a_time else [nodes]):
        check_blast(caps, topology, name, step, open_now)


def check_variables(experiment: dict, explicit: dict, from_files: dict
                    ) -> tuple[list[str], list[str]]:
    """(problems, warnings): explicit --var keys the experiment does not
    declare refuse the run; unused --var-file keys are warned about."""
    declared = sorted(experiment.get("configuration") or {})
    listed = ", ".join(declared) or "none"
    problems = [
        f"--var {key}: the experiment declares no configuration key "
        f"{key!r}{_guess(key, declared)}; Chaos Toolkit would silently "
        f"ignore it. Its keys: {listed}"
        for key in sorted(set(explicit) - set(declared))]
    unused = sorted(set(from_files) - set(declared) - set(explicit))
    warnings = [f"--var-file sets {', '.join(unused)}, which the "
                f"experiment does not declare (ignored); its keys: {listed}"
                ] if unused else []
    return problems, warnings


def _guess(key: str, declared: list[str]) -> str:
    close = difflib.get_close_matches(key, declared, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def file_variables(var_files: list[str] | tuple[str, ...]) -> dict:
    """The configuration values of --var-file files, read by Chaos
    Toolkit's own merge_vars (.env files set environment variables)."""
    return merge_vars(None, list(var_files))[0] if var_files else {}


def command_line_variables() -> tuple[dict, dict]:
    """(--var values, --var-file configuration values) of the `chaos run`
    this process is running, read from its click context (already parsed
    by Chaos Toolkit's own callback); empty outside `chaos run`."""
    context = click.get_current_context(silent=True)
    if context is None or context.command.name != "run" or \
            "var" not in context.params:
        return {}, {}
    return (dict(context.params.get("var") or {}),
            file_variables(context.params.get("var_file") or ()))
