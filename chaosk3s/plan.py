"""`chaosk3s plan EXPERIMENT`: exactly what an experiment would change on
which node, computed from the live topology; nothing is changed.

Variables are read exactly as `chaos run` reads them (Chaos Toolkit's
own --var parser, merge_vars and load_configuration), and whatever the
chaosk3s control would refuse the run for is reported instead of a plan.
"""

from chaoslib import merge_vars, substitute
from chaoslib.configuration import load_configuration
from chaoslib.exceptions import ChaosException
from chaoslib.loader import parse_experiment_from_file
from chaoslib.secret import load_secrets

from chaosk3s import actions
from chaosk3s.arguments import coerce
from chaosk3s.errors import SpecError
from chaosk3s.experiment_check import (
    check_arguments,
    check_selectors,
    check_variables,
    file_variables,
)
from chaosk3s.faults.apply import setup_for
from chaosk3s.faults.partition import render_dry_run
from chaosk3s.selectors import select
from chaosk3s.target import Target, get_target

_NODE_ACTIONS = {"restart_k3s": "restart", "stop_k3s": "stop",
                 "start_k3s": "start", "reboot_nodes": "reboot"}


class Refused(SpecError):
    """What `chaos run` would refuse: one line per problem."""


def load_experiment(path: str, variables: dict, var_files: tuple = ()
                    ) -> tuple[dict, dict, dict, list[str]]:
    """The experiment, its configuration and secrets as `chaos run` builds
    them from --var and --var-file (Chaos Toolkit's own merge_vars and
    load_configuration), and the warnings; Refused if a run would be."""
    try:
        experiment = parse_experiment_from_file(path)
    except (OSError, ValueError, ChaosException) as exc:
        raise SpecError(f"cannot read experiment {path}: {exc}") from None
    config_vars, secret_vars = merge_vars(dict(variables), list(var_files))
    from_files = file_variables(var_files)
    problems, warnings = check_variables(experiment, variables, from_files)
    try:
        configuration = load_configuration(
            experiment.get("configuration", {}), dict(config_vars))
        secrets = load_secrets(experiment.get("secrets", {}),
                               configuration, secret_vars)
    except ChaosException as exc:
        raise SpecError(f"{path}: {exc}") from None
    problems += check_arguments(experiment, configuration, secrets)
    if problems:
        raise Refused("\n".join(problems))
    return experiment, configuration, secrets, warnings


def describe(path: str, variables: dict, var_files: tuple = (),
             scripts: bool = False) -> str:
    experiment, configuration, secrets, warnings = load_experiment(
        path, variables, var_files)
    target = get_target(configuration)
    problems = check_selectors(experiment, configuration, secrets,
                               target.topology())
    if problems:
        raise Refused("\n".join(problems))
    lines = [f"warning: {w}" for w in warnings] + [
        f"experiment: {experiment.get('title', path)}",
        f"target: {target.name} (cluster {target.inventory.cluster})"]
    steps = [("method", a) for a in experiment.get("method", [])] + \
        [("rollback", a) for a in experiment.get("rollbacks", [])]
    for number, (phase, activity) in enumerate(steps, 1):
        provider = activity.get("provider", {})
        args = substitute(provider.get("arguments", {}), configuration,
                          secrets) or {}
        lines.append(f"\n[{number}] {phase}: {activity.get('name')} "
                     f"({provider.get('module')}.{provider.get('func')})")
        if provider.get("module") == "chaosk3s.actions":
            lines.append(_step(target, provider["func"], args, number,
                               scripts))
        else:
            lines.append("    changes nothing on any node")
    return "\n".join(lines)


def _arguments(func: str, given: dict) -> dict:
    """The arguments the action will run with: given (converted as the
    action converts them), then its own defaults."""
    return coerce(getattr(actions, func), given, with_defaults=True)


def _step(target: Target, func: str, given: dict, number: int,
          scripts: bool) -> str:
    topology = target.topology()
    if func == "partition_roles":
        args = _arguments(func, given)
        plan = actions.plan_partition(
            target, select(topology, args["group"]),
            select(topology, args["peers"]), args["direction"],
            args["mode"], args["ports"], args["ttl"], args["force"],
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
