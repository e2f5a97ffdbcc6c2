"""Apply, heal and read back partitions on many nodes at once.

Runs in the Chaos Toolkit process: one thread per node at a time (the work
is waiting on ssh or ip-netns-exec), bounded by ``max_workers``.

Apply happens in two phases. First every node is reached once (which also
tells, over SSH, the runner's address as the node sees it, for the
management ACCEPT); an unreachable node stops the plan before any node is
changed. Then every node applies its rules; if any fails, every node that
was touched is healed and FaultError says which failed and why.
"""

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from chaosk3s.errors import ChaosK3sError, FaultError
from chaosk3s.faults.partition import (
    DEFAULT_STATE_DIR,
    Management,
    NodeSetup,
    apply_script,
    chain_name,
    heal_script,
    node_lines,
    readback_script,
    validate_plan,
)
from chaosk3s.faults.readback import ActiveFault, parse_readback
from chaosk3s.model import FaultPlan
from chaosk3s.transports.base import Transport

logger = logging.getLogger("chaostoolkit")
MAX_WORKERS = 32
STEP_TIMEOUT = 30.0  # seconds for one node's script
_WHO_AM_I = 'printf "%s" "${SSH_CONNECTION:-}"'  # runner as node sees it


@dataclass(frozen=True)
class NodeOutcome:
    """What one step did on one node, for the journal."""

    node: str
    action: str  # apply, heal, read
    ok: bool
    started_at: str
    ended_at: str
    seconds: float
    chain: str | None = None
    rules: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()  # chains a heal removed
    active: tuple[ActiveFault, ...] = ()
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Step:
    node: str
    action: str
    started: float = field(default_factory=time.time)


def setup_for(transport: Transport, state_dir: str = DEFAULT_STATE_DIR,
              runner_address: str | None = None) -> NodeSetup:
    """How scripts run on transport's node: keep its management port
    open, and use a systemd timer only where it is the node's own."""
    return NodeSetup(
        node=transport.node,
        management=Management(transport.management_port, runner_address),
        state_dir=state_dir,
        timer="setsid" if transport.kind == "netns" else "auto")


def discover_setups(transports: Mapping[str, Transport],
                    state_dir: str = DEFAULT_STATE_DIR,
                    max_workers: int = MAX_WORKERS) -> dict[str, NodeSetup]:
    """Reach every node once; raise FaultError if any cannot be reached.
    Over SSH this also learns the runner's address as the node sees it."""
    seen: dict[str, str | None] = {}

    def reach(node: str) -> NodeOutcome:
        step = _Step(node, "reach")
        try:
            out = transports[node].run(_WHO_AM_I, timeout=STEP_TIMEOUT,
                                       description="reach node").stdout
        except ChaosK3sError as exc:
            return _done(step, False, error=str(exc))
        seen[node] = out.split(" ")[0] or None
        return _done(step, True)

    _raise_if_failed(_each(sorted(transports), reach, max_workers),
                     "cannot reach")
    return {node: setup_for(transports[node], state_dir, seen.get(node))
            for node in sorted(transports)}


def apply_plan(plan: FaultPlan, transports: Mapping[str, Transport],
               state_dir: str = DEFAULT_STATE_DIR,
               max_workers: int = MAX_WORKERS) -> list[NodeOutcome]:
    """Apply plan on each of its nodes; all nodes or (healed) none."""
    validate_plan(plan)
    missing = sorted(set(plan.nodes()) - set(transports))
    if missing:
        raise ChaosK3sError(f"plan {plan.run_id}: no transport for "
                            f"node(s) {', '.join(missing)}")
    used = {node: transports[node] for node in plan.nodes()}
    setups = discover_setups(used, state_dir, max_workers)
    chain = chain_name(plan.run_id)
    # Every node's rules and script are built before any node is touched:
    # one that cannot be (an address the runner is seen from, say) stops
    # the plan while nothing is cut yet.
    scripts = {node: apply_script(plan, setups[node]) for node in used}
    rules = {node: tuple(node_lines(plan, node, setups[node].management))
             for node in used}
    what, tool = ("degradation", "tc") if plan.degradations and \
        not plan.cuts else ("partition", "iptables-restore")

    def apply(node: str) -> NodeOutcome:
        step = _Step(node, "apply")
        try:
            used[node].run(scripts[node], timeout=STEP_TIMEOUT,
                           description=f"apply {what} {plan.run_id} "
                           f"({tool} as {chain})")
        except ChaosK3sError as exc:
            return _done(step, False, chain=chain, rules=rules[node],
                         error=str(exc))
        return _done(step, True, chain=chain, rules=rules[node])

    outcomes = _each(sorted(used), apply, max_workers)
    if not all(o.ok for o in outcomes):
        _undo(plan, used, outcomes, state_dir, max_workers)
    logger.info("%s %s applied on %s", what, plan.run_id,
                ", ".join(sorted(used)))
    return outcomes


def _undo(plan: FaultPlan, used: Mapping[str, Transport],
          outcomes: list[NodeOutcome], state_dir: str,
          max_workers: int) -> None:
    failed = [o for o in outcomes if not o.ok]
    healed = heal(used, plan, state_dir, max_workers, strict=False)
    stuck = [o for o in healed if not o.ok]
    message = (f"fault {plan.run_id} failed on "
               f"{', '.join(o.node for o in failed)}: "
               + "; ".join(o.error or "?" for o in failed)
               + f". Healed {sum(o.ok for o in healed)} node(s) it had "
               f"reached")
    if stuck:
        message += (f"; could NOT heal {', '.join(o.node for o in stuck)} "
                    f"(their rules expire on the node after "
                    f"{plan.ttl_seconds:g}s): "
                    + "; ".join(o.error or "?" for o in stuck))
    raise FaultError(message, outcomes + healed)


def heal(transports: Mapping[str, Transport],
         target: FaultPlan | str | None = None,
         state_dir: str = DEFAULT_STATE_DIR,
         max_workers: int = MAX_WORKERS,
         strict: bool = True) -> list[NodeOutcome]:
    """Remove a plan's (or run id's, or with None all chaosk3s) chains on
    every node given, cancelling timers. Idempotent. strict: raise
    FaultError after trying every node if any failed."""
    def run(node: str) -> NodeOutcome:
        step = _Step(node, "heal")
        setup = setup_for(transports[node], state_dir)
        try:
            out = transports[node].run(
                heal_script(setup, target), timeout=STEP_TIMEOUT,
                description=f"heal {_label(target)}").stdout
        except ChaosK3sError as exc:
            return _done(step, False, error=str(exc))
        removed = tuple(dict.fromkeys(
            line.split()[1] for line in out.splitlines()
            if line.startswith("removed ")))
        return _done(step, True, removed=removed)

    outcomes = _each(sorted(transports), run, max_workers)
    if strict:
        _raise_if_failed(outcomes, f"cannot heal {_label(target)} on")
    return outcomes


def read_active(transports: Mapping[str, Transport],
                state_dir: str = DEFAULT_STATE_DIR,
                max_workers: int = MAX_WORKERS,
                strict: bool = True) -> list[NodeOutcome]:
    """Every chaosk3s chain and start timer on every node, read from the
    node itself. strict: raise FaultError if any node cannot be read;
    else a node that cannot is an outcome with ok False."""
    def read(node: str) -> NodeOutcome:
        step = _Step(node, "read")
        setup = setup_for(transports[node], state_dir)
        try:
            out = transports[node].run(
                readback_script(setup), timeout=STEP_TIMEOUT,
                description="read back chaosk3s chains").stdout
        except ChaosK3sError as exc:
            return _done(step, False, error=str(exc))
        return _done(step, True, active=tuple(parse_readback(node, out)))

    outcomes = _each(sorted(transports), read, max_workers)
    if strict:
        _raise_if_failed(outcomes, "cannot read back faults on")
    return outcomes


def _label(target: FaultPlan | str | None) -> str:
    if target is None:
        return "every chaosk3s chain"
    return f"run {target.run_id if isinstance(target, FaultPlan) else target}"


def _each(nodes: list[str], work: Callable[[str], NodeOutcome],
          max_workers: int) -> list[NodeOutcome]:
    if not nodes:
        return []
    workers = max(1, min(max_workers, len(nodes)))
    with ThreadPoolExecutor(workers, thread_name_prefix="chaosk3s") as pool:
        return list(pool.map(work, nodes))


def _done(step: _Step, ok: bool, **fields: object) -> NodeOutcome:
    ended = time.time()
    return NodeOutcome(node=step.node, action=step.action, ok=ok,
                       started_at=_iso(step.started), ended_at=_iso(ended),
                       seconds=round(ended - step.started, 4), **fields)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _raise_if_failed(outcomes: list[NodeOutcome], what: str) -> None:
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise FaultError(
            f"{what} {', '.join(o.node for o in failed)}: "
            + "; ".join(o.error or "?" for o in failed), outcomes)
