"""Healing what a run (or any run) injected on a target.

Used by the control's cleanup hook and by `chaosk3s cleanup`. Reads the
ledger for what was meant, and the nodes themselves for what is true.
"""

import logging

from chaosk3s.errors import ChaosK3sError
from chaosk3s.faults.apply import heal, read_active
from chaosk3s.ledger import open_ledgers
from chaosk3s.model import Node
from chaosk3s.readiness import utc_now
from chaosk3s.run import Run
from chaosk3s.target import Target, get_target

logger = logging.getLogger("chaostoolkit")


def heal_run(configuration: dict, run: Run) -> list[str]:
    """Heal this run's open partitions and start what it stopped."""
    if not run.ledger.open_faults():
        return []
    target = get_target(configuration)
    nodes = {n.name: n for n in target.topology().nodes}
    done = []
    for fault in run.ledger.open_faults():
        chosen = [nodes[n] for n in fault["nodes"] if n in nodes]
        if fault["kind"] == "partition":
            heal(target.transports(chosen), fault["id"])
        elif fault["kind"] == "stop":
            _start(target, chosen)
        run.ledger.update(fault["id"], ended_at=utc_now(),
                          healed_by="cleanup")
        done.append(fault["id"])
    if done:
        logger.info("chaosk3s cleanup healed %s", ", ".join(done))
    return done


def _start(target: Target, nodes: list[Node]) -> None:
    """Start k3s again where a run stopped it and did not start it."""
    for node in nodes:
        target.transport(node).run(target.inventory.command(
            node.role, "start", node.name), timeout=120)


def heal_everything(configuration: dict) -> dict:
    """Remove every chaosk3s chain on every node of the target, whoever
    made it; return what was found before and after."""
    target = get_target(configuration)
    transports = target.transports()
    before = read_active(transports)
    found = [f.as_dict() for o in before for f in o.active]
    heal(transports, None)
    nodes = {n.name: n for n in target.topology().nodes}
    for ledger in open_ledgers(target.name):
        for fault in ledger.open_faults():
            if fault["kind"] == "stop":
                _start(target, [nodes[n] for n in fault["nodes"]
                                if n in nodes])
            ledger.update(fault["id"], ended_at=utc_now(),
                          healed_by="chaosk3s cleanup")
    after = [f.as_dict() for o in read_active(transports) for f in o.active]
    if after:
        raise ChaosK3sError(
            f"chaosk3s chains still active after heal on "
            f"{', '.join(sorted({f['node'] for f in after}))}")
    return {"found": found, "remaining": after}
