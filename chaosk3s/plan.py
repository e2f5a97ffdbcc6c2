"""`chaosk3s plan EXPERIMENT`: exactly what an experiment would change on
which node, computed from the live topology; nothing is changed.

Variables are read exactly as `chaos run` reads them (Chaos Toolkit's
own --var parser, merge_vars and load_configuration), and whatever the
chaosk3s control would refuse the run for (the cluster's consent and
the blast-radius caps included) is reported instead of a plan. The plan
starts with the caps as they apply to this cluster's roles.
"""

import shlex

from chaoslib import merge_vars, substitute
from chaoslib.configuration import load_configuration
from chaoslib.exceptions import ChaosException
from chaoslib.loader import parse_experiment_from_file
from chaoslib.secret import load_secrets

from chaosk3s import actions, blast
from chaosk3s.arguments import coerce
from chaosk3s.errors import NotConsented, Refused, SpecError
from chaosk3s.experiment_check import (
    check_arguments,
    check_blast_radius,
    check_selectors,
    check_variables,
    file_variables,
)
from chaosk3s.faults.apply import setup_for
from chaosk3s.faults.guard import read_etcd_state
from chaosk3s.faults.partition import render_dry_run, validate_plan
from chaosk3s.links import flap_of, netem_of, plan_degradation
from chaosk3s.safety import EtcdState, check_quorum, cut_pairs, members_of
from chaosk3s.selectors import select
from chaosk3s.target import Target, get_target

_NODE_ACTIONS = {"restart_k3s": "restart", "stop_k3s": "stop",
                 "start_k3s": "start", "reboot_nodes": "reboot",
                 "upgrade_k3s": "upgrade"}


def load_experiment(path: str, variables: dict, var_files: tuple = ()
                    ) -> tuple[dict, dict, dict, list[str]]:
    """The experiment, its configuration and secrets as `chaos run` builds
    them from --var and --var-file (Chaos Toolkit's own merge_vars and
    load_configuration), and the warnings; Refused if a run would be."""
    try:
        experiment = parse_experiment_from_file(path)
    except (OSError, ValueError, ChaosException) as exc:
        raise SpecError(f"cannot read experiment {path}: {exc}") from exc
    config_vars, secret_vars = merge_vars(dict(variables), list(var_files))
    from_files = file_variables(var_files)
    problems, warnings = check_variables(experiment, variables, from_files)
    try:
        configuration = load_configuration(
            experiment.get("configuration", {}), dict(config_vars))
        secrets = load_secrets(experiment.get("secrets", {}),
                               configuration, secret_vars)
    except ChaosException as exc:
        raise SpecError(f"{path}: {exc}") from exc
    problems += check_arguments(experiment, configuration, secrets)
    if problems:
        raise Refused("\n".join(problems))
    return experiment, configuration, secrets, warnings


def describe(path: str, variables: dict, var_files: tuple = (),
             scripts: bool = False) -> str:
    experiment, configuration, secrets, warnings = load_experiment(
        path, variables, var_files)
    target = get_target(configuration)
    topology = target.topology()
    problems = _consent(target) + (check_selectors(
        experiment, configuration, secrets, topology) or check_blast_radius(
        experiment, configuration, secrets, topology, target.inventory.caps,
        target.labelled))
    if problems:
        raise Refused("\n".join(problems))
    lines = [f"warning: {w}" for w in warnings] + [
        f"experiment: {experiment.get('title', path)}",
        f"target: {target.name} (cluster {target.inventory.cluster})",
        f"blast radius: {blast.describe(target.inventory.caps, topology)}"]
    steps = [("method", a) for a in experiment.get("method", [])] + \
        [("rollback", a) for a in experiment.get("rollbacks", [])]
    guard = _Guard(target)
    for number, (phase, activity) in enumerate(steps, 1):
        provider = activity.get("provider", {})
        args = substitute(provider.get("arguments", {}), configuration,
                          secrets) or {}
        lines.append(f"\n[{number}] {phase}: {activity.get('name')} "
                     f"({provider.get('module')}.{provider.get('func')})")
        if provider.get("module") == "chaosk3s.actions":
            lines.append(_step(target, provider["func"], args, number,
                               scripts, guard))
        else:
            lines.append("    changes nothing on any node")
    return "\n".join(lines)


def _consent(target: Target) -> list[str]:
    """What chaos run would refuse on the cluster's say (chaosk3s.consent)."""
    try:
        target.check_consent()
    except NotConsented as exc:
        return [str(exc)]
    return []


class _Guard:
    """The quorum guard as the run would meet it: the members' live
    state (health, other runs' faults on the nodes), plus what the steps
    before this one left open (stops not yet started, partitions not yet
    healed). A refused step changes nothing, in the run and here."""

    def __init__(self, target: Target):
        self.target = target
        self._state: EtcdState | None = None

    def state(self, topology) -> EtcdState:
        if self._state is None:
            self._state = read_etcd_state(
                topology, self.target.transport, lambda n: (
                    self.target.inventory.command(n.role, "etcd_health",
                                                  n.name)))
        return self._state

    def refusal(self, topology, what: str, force: bool, down=None,
                cuts=None, keep: bool = True) -> str | None:
        """None if allowed (and, with keep, remembered), else why not."""
        state = self.state(topology)
        try:
            check_quorum(state, what, down, cuts, force)
        except SpecError as exc:
            return f"    REFUSED by the quorum guard: {exc}"
        if keep:
            self._state = state.plus(down, cuts)
        return None

    def start(self, names: set[str]) -> None:
        if self._state is not None:
            self._state = EtcdState(self._state.members, {
                m: w for m, w in self._state.down.items()
                if m not in names}, self._state.cuts)

    def heal_partitions(self) -> None:
        if self._state is not None:
            self._state = EtcdState(self._state.members, self._state.down, {
                p: w for p, w in self._state.cuts.items()
                if not w.startswith("step ")})


def _arguments(func: str, given: dict) -> dict:
    """The arguments the action will run with: given (converted as the
    action converts them), then its own defaults."""
    return coerce(getattr(actions, func), given, with_defaults=True)


def _step(target: Target, func: str, given: dict, number: int,
          scripts: bool, guard: _Guard) -> str:
    topology = target.topology()
    if func in ("partition_roles", "partition_nodes"):
        return _partition_step(target, topology, func,
                               _arguments(func, given), number, scripts,
                               guard)
    if func == "degrade_links":
        return _degrade_step(target, topology, _arguments(func, given),
                             number, scripts, guard)
    if func == "heal_partitions":
        guard.heal_partitions()
        return ("    removes this run's CHAOSK3S chains and tc qdiscs on "
                "the nodes it cut or degraded")
    if func in _NODE_ACTIONS:
        return _node_step(target, topology, func, _arguments(func, given),
                          number, guard)
    return f"    {func}: see its documentation (`chaos discover`)"


def _partition_step(target: Target, topology, func: str, args: dict,
                    number: int, scripts: bool, guard: _Guard) -> str:
    try:
        if func == "partition_nodes":
            group, peers = (actions.labelled_nodes(target, topology, s)
                            for s in (args["selector"],
                                      args["peer_selector"]))
        else:
            group, peers = (select(topology, args[k])
                            for k in ("group", "peers"))
        plan = actions.plan_partition(
            target, group, peers, args["direction"], args["mode"],
            args["ports"], args["ttl"], args["force"], topology,
            f"plan{number}", flap_of(args))
        validate_plan(plan)
    except SpecError as exc:
        return f"    REFUSED: {exc}"
    pairs = cut_pairs(plan.cuts)
    refused = guard.refusal(topology, "this partition", bool(args["force"]),
                            cuts=dict.fromkeys(pairs, f"step {number}"))
    nodes = [n for n in topology.nodes if n.name in plan.nodes()]
    setups = {n.name: setup_for(target.transport(n), target.node_state_dir)
              for n in nodes}
    text = _indent(render_dry_run(plan, setups, scripts))
    return f"{refused}\n{text}" if refused else text


def _degrade_step(target: Target, topology, args: dict, number: int,
                  scripts: bool, guard: _Guard) -> str:
    try:
        plan = plan_degradation(
            select(topology, args["group"]), select(topology, args["peers"]),
            netem_of(args), args["direction"], args["ports"], args["ttl"],
            f"plan{number}", flap_of(args))
        validate_plan(plan)
    except SpecError as exc:
        return f"    REFUSED: {exc}"
    members = set(members_of(topology))
    pairs = [frozenset((d.node, d.peer)) for d in plan.degradations
             if {d.node, d.peer} <= members]
    refused = guard.refusal(topology, "this degradation",
                            bool(args["force"]),
                            cuts=dict.fromkeys(pairs, f"step {number}"))
    nodes = [n for n in topology.nodes if n.name in plan.nodes()]
    setups = {n.name: setup_for(target.transport(n)) for n in nodes}
    text = _indent(render_dry_run(plan, setups, scripts))
    return f"{refused}\n{text}" if refused else text


def _node_step(target: Target, topology, func: str, args: dict,
               number: int, guard: _Guard) -> str:
    action = _NODE_ACTIONS[func]
    chosen = select(topology, args["nodes"])
    names = {n.name for n in chosen}
    lines = [f"    {n.name}: "
             f"{target.inventory.command(n.role, action, n.name)}"
             for n in chosen]
    if action == "upgrade":  # the version as the action fills it in
        lines = [line.replace("{version}", shlex.quote(args["version"]))
                 for line in lines]
    if action == "restart" and args.get("drain"):
        lines = [line for n, command in zip(chosen, lines, strict=True)
                 for line in (f"    {n.name}: cordon and drain "
                              f"(chaostoolkit-kubernetes drain_nodes)",
                              command, f"    {n.name}: uncordon once back")]
    force = bool(args.get("force"))
    if action == "start":
        guard.start(names)
    elif action == "stop" or not args.get("one_at_a_time", True):
        refused = guard.refusal(
            topology, f"{action} of {', '.join(sorted(names))} at once",
            force, down=dict.fromkeys(names, f"step {number}"),
            keep=action == "stop")
        lines = [refused, *lines] if refused else lines
    else:
        for name in sorted(names):
            refused = guard.refusal(topology, f"{action} of {name}", force,
                                    down={name: f"step {number}"},
                                    keep=False)
            if refused:
                return "\n".join([refused, *lines])
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
