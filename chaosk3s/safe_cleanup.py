"""Healing what a run (or any run) injected on a target.

`heal_run` is the control's cleanup: the run's FaultSession walks its
ledger. `heal_everything` is `chaosk3s cleanup`: every open ledger of the
target, then a sweep of the nodes themselves for chaosk3s chains and
node-side start timers that no ledger knows (a ledger lost or set aside
as unreadable). Both are best effort per fault and per node, and report
exactly what stays open; neither needs the API (the ledger says how to
reach each node; the sweep falls back to the inventory's nodes).
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from chaosk3s.errors import INTERRUPTIONS, ChaosK3sError
from chaosk3s.faults import service
from chaosk3s.faults.apply import heal, read_active, setup_for
from chaosk3s.faults.readback import ActiveFault
from chaosk3s.faults.session import FaultSession
from chaosk3s.faults.timers import cancel_start_script
from chaosk3s.faults.undo import HealReport
from chaosk3s.ledger import Ledger, open_ledgers
from chaosk3s.model import Node
from chaosk3s.run import Run, TargetPorts
from chaosk3s.target import (
    Target,
    get_target,
    node_state_dir,
    target_name,
)

logger = logging.getLogger("chaostoolkit")


def heal_run(run: Run, by: str = "cleanup") -> HealReport:
    """Heal everything this run injected and still has open."""
    report = run.session.heal(by=by)
    if report.healed:
        logger.info("chaosk3s cleanup healed %s", ", ".join(report.healed))
    return report


@dataclass
class CleanupReport:
    healed: list[str] = field(default_factory=list)  # "fault F of run R"
    swept: list[str] = field(default_factory=list)  # found on the nodes
    open: list[str] = field(default_factory=list)  # what stays, and why

    @property
    def ok(self) -> bool:
        return not self.open


def heal_everything(configuration: dict) -> CleanupReport:
    """Heal every open fault of every run against the target, then
    every chaosk3s chain and start timer left on any node."""
    name = target_name(configuration)
    report = CleanupReport()
    ledgers, problems = open_ledgers(name)
    report.open += problems
    interrupt = None
    for ledger in ledgers:
        try:
            _heal_ledger(ledger, name, report)
        except INTERRUPTIONS as exc:  # its walk is
            # done (FaultSession.heal); the other runs' still to do
            report.open.append(f"run {ledger.run_id}: interrupted")
            interrupt = interrupt or exc
    if interrupt is not None:
        raise interrupt
    _sweep(get_target(configuration), report)
    for line in report.open:
        logger.error("chaosk3s cleanup: still open: %s", line)
    return report


def _heal_ledger(ledger: Ledger, name: str, report: CleanupReport) -> None:
    try:
        runs = FaultSession(ledger, TargetPorts(name),
                            node_state_dir(name)).heal(by="chaosk3s cleanup")
    except ChaosK3sError as exc:  # e.g. it turned unreadable
        report.open.append(f"run {ledger.run_id}: {exc}")
        return
    report.healed += [f"fault {f} of run {ledger.run_id}"
                      for f in runs.healed]
    report.open += [f"fault {o['fault_id']} ({o['kind']}) of run "
                    f"{ledger.run_id} on {o['node']}: {o['error']}"
                    for o in runs.open] + runs.problems


def sweep_nodes(target: Target) -> list[Node]:
    """Every node the inventory can reach: from the API, or, when no API
    server answers, from the inventory alone (roles may be unknown)."""
    try:
        return target.reachable(target.topology(wait=0).nodes)
    except ChaosK3sError as exc:
        logger.warning("chaosk3s cleanup: %s; sweeping the inventory's "
                       "nodes", exc)
    return [Node(e.name, e.role or "", e.address or "", e.join_server,
                 e.access) for e in target.inventory.nodes.values()
            if e.access is not None]


def _sweep(target: Target, report: CleanupReport) -> None:
    nodes = {n.name: n for n in sweep_nodes(target)}
    transports = {n: target.transport(node) for n, node in nodes.items()}
    found = read_active(transports, target.node_state_dir, strict=False)
    with ThreadPoolExecutor(max(1, min(16, len(found)))) as pool:
        lines = list(pool.map(lambda o: _sweep_node(
            target, nodes[o.node], o.active if o.ok else None,
            o.error), found))
    for swept, still in lines:
        report.swept += swept
        report.open += still


def _sweep_node(target: Target, node: Node,
                active: tuple[ActiveFault, ...] | None,
                error: str | None) -> tuple[list[str], list[str]]:
    """(what was healed, what stays) on one node; never raises."""
    if active is None:
        return [], [f"node {node.name} cannot be read: {error}"]
    transport = target.transport(node)
    swept, still = [], []
    chains = [f for f in active if f.kind in ("partition", "degradation")]
    if chains:
        (outcome,) = heal({node.name: transport}, None,
                          target.node_state_dir, strict=False)
        if outcome.ok:
            swept += [f"removed {f.chain} on {node.name} (run "
                      f"{f.run_id or '?'})" for f in chains]
    reported = set()
    for timer in (f for f in active if f.kind == "stop"):
        try:
            swept.append(_start_now(target, node, transport, timer))
        except ChaosK3sError as exc:
            reported.add(timer.chain)
            still.append(f"k3s on {node.name} stopped by "
                         f"{timer.run_id or timer.chain}, starts by itself "
                         f"at {timer.timer.expires_at}: {exc}")
    try:
        (after,) = read_active({node.name: transport},
                               target.node_state_dir)
        still += [f"{f.kind} {f.chain} (run {f.run_id or '?'}) still on "
                  f"{node.name}" for f in after.active
                  if f.chain not in reported]
    except ChaosK3sError as exc:
        still.append(f"node {node.name} cannot be read back: {exc}")
    return swept, still


def _start_now(target: Target, node: Node, transport,
               timer: ActiveFault) -> str:
    """A node-side start pending for a stop no ledger knows: start K3s
    now (if needed) and cancel the timer."""
    if not node.role:
        raise ChaosK3sError("its role is unknown (no API server answers "
                            "and the inventory gives none), so the start "
                            "command is too")
    commands = {a: target.inventory.command(node.role, a, node.name)
                for a in ("start", "status")}
    if not service.read_status(transport, commands["status"]).running:
        service.start(transport, commands, 60, server=False)
    setup = setup_for(transport, target.node_state_dir)
    transport.run(cancel_start_script(setup, timer.run_id),
                  timeout=30, description="cancel a node-side start")
    return f"started k3s on {node.name} (stopped by {timer.run_id or '?'})"
