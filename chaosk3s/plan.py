"""`chaosk3s plan EXPERIMENT`: exactly what an experiment would change on
which node, computed from the live topology; nothing is changed."""

import inspect
import json
from pathlib import Path

from chaoslib import substitute
from chaoslib.configuration import load_configuration

from chaosk3s import actions
from chaosk3s.errors import SpecError
from chaosk3s.faults.apply import setup_for
from chaosk3s.faults.partition import render_dry_run
from chaosk3s.selectors import select
from chaosk3s.target import Target, get_target

_NODE_ACTIONS = {"restart_k3s": "restart", "stop_k3s": "stop",
                 "start_k3s": "start", "reboot_nodes": "reboot"}


def load_experiment(path: str, variables: dict[str, str]) -> tuple[dict,
                                                                   dict]:
    try:
        experiment = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SpecError(f"cannot read experiment {path}: {exc}") from None
    configuration = load_configuration(
        experiment.get("configuration", {}), variables)
    return experiment, configuration


def describe(path: str, variables: dict[str, str],
             scripts: bool = False) -> str:
    experiment, configuration = load_experiment(path, variables)
    target = get_target(configuration)
    lines = [f"experiment: {experiment.get('title', path)}",
             f"target: {target.name} (cluster {target.inventory.cluster})"]
    steps = [("method", a) for a in experiment.get("method", [])] + \
        [("rollback", a) for a in experiment.get("rollbacks", [])]
    for number, (phase, activity) in enumerate(steps, 1):
        provider = activity.get("provider", {})
        args = substitute(provider.get("arguments", {}), configuration, {})
        lines.append(f"\n[{number}] {phase}: {activity.get('name')} "
                     f"({provider.get('module')}.{provider.get('func')})")
        if provider.get("module") == "chaosk3s.actions":
            lines.append(_step(target, provider["func"], args, number,
                               scripts))
        else:
            lines.append("    changes nothing on any node")
    return "\n".join(lines)


def _arguments(func: str, given: dict) -> dict:
    """The arguments the action will run with: given, then its defaults
    (read from the action itself, so the plan cannot drift from it)."""
    try:
        bound = inspect.signature(getattr(actions, func)).bind(**given)
    except TypeError as exc:  # what chaos run would fail on too
        raise SpecError(f"chaosk3s.actions.{func}: {exc}") from None
    bound.apply_defaults()
    return bound.arguments


def _step(target: Target, func: str, given: dict, number: int,
          scripts: bool) -> str:
    topology = target.topology()
    if func == "partition_roles":
        args = _arguments(func, given)
        plan = actions.plan_partition(
            target, select(topology, args["group"]),
            select(topology, args["peers"]), args["direction"],
            args["mode"], args["ports"], args["ttl"], bool(args["force"]),
            topology, f"plan{number}")
        nodes = [n for n in topology.nodes if n.name in plan.nodes()]
        setups = {n.name: setup_for(target.transport(n)) for n in nodes}
        return _indent(render_dry_run(plan, setups, scripts))
    if func == "heal_partitions":
        return "    removes this run's CHAOSK3S chains on the nodes it cut"
    if func in _NODE_ACTIONS:
        action = _NODE_ACTIONS[func]
        chosen = select(topology, _arguments(func, given)["nodes"])
        return "\n".join(
            f"    {n.name}: {target.inventory.command(n.role, action, n.name)}"
            for n in chosen)
    return f"    {func}: see its documentation (`chaos discover`)"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
