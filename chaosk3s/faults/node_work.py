"""One node fault's commands on its node: stop, restart or reboot K3s,
prove it (chaosk3s.faults.service), and wait for the node to be back.

The FaultSession records the fault first and runs this in a worker
thread (on_the_node): a signal's exception lands in the caller's thread,
and the caller leaves only when the command sent to the node returned,
so the apply stays in flight (a heal waits for it) until it has landed.
`issued` tells the session whether anything that may change the node
was sent: a fault whose command never left the runner was not applied.
A stop holds for its hold counted from when K3s is seen stopped, not
from before the stop (see NodeWork._stop); `armed` is told the node's
own deadline each time its start timer is armed.
"""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from chaosk3s.errors import EffectNotSeen
from chaosk3s.faults import service
from chaosk3s.faults.apply import setup_for
from chaosk3s.faults.timers import arm_start_script, armed_until
from chaosk3s.model import Node
from chaosk3s.readiness import utc_now
from chaosk3s.transports.base import Transport


def on_the_node(work: Callable[[], dict]) -> dict:
    """Run work in a worker thread; leaving waits for it to return,
    whatever interrupts the caller meanwhile."""
    with ThreadPoolExecutor(1, thread_name_prefix="chaosk3s-node") as pool:
        return pool.submit(work).result()


@dataclass
class NodeWork:
    action: str  # stop | restart | reboot | upgrade
    node: Node
    transport: Transport
    commands: dict[str, str]
    bound: float
    fault_id: str
    state_dir: str
    armed: Callable[[str], None] | None = None  # told each node deadline
    issued: bool = False  # a command that may change the node was sent

    def _issue(self) -> None:
        self.issued = True

    def run(self, start_after: float | None, back: bool,
            ports) -> dict:
        evidence = self._fault(start_after)
        if back:
            evidence["back"] = self.wait_back(ports)
        return evidence

    def _fault(self, start_after: float | None) -> dict:
        transport, commands = self.transport, self.commands
        if self.action == "stop":
            return self._stop(float(start_after or 0))
        if self.action == "reboot":
            return service.reboot(transport, commands, self.bound,
                                  self.fault_id, self.state_dir,
                                  on_issue=self._issue)
        run = service.upgrade if self.action == "upgrade" else \
            service.restart
        return run(transport, commands, self.bound, on_issue=self._issue)

    def _stop(self, hold: float) -> dict:
        """Stop K3s for hold seconds counted from the stop's confirmation:
        armed first at hold plus the stop's bound (the safety net while
        the stop runs), re-armed at hold once K3s is seen stopped."""
        transport, commands = self.transport, self.commands
        # Read first: an unreachable node fails here, with nothing sent;
        # from the arm on, the node may have changed.
        service.read_status(transport, commands["status"])
        self._issue()
        self._arm(hold + self.bound)
        evidence = service.stop(transport, commands, self.bound)
        until = self._arm(hold)
        return {**evidence, "starts_by_itself_after": hold,
                "starts_by_itself_at": until}

    def _arm(self, seconds: float) -> str | None:
        """Arm (or re-arm) the node-side start; the node's deadline."""
        out = self.transport.run(arm_start_script(
            setup_for(self.transport, self.state_dir), self.fault_id,
            seconds, self.commands["start"]), timeout=30,
            description=f"arm the node-side start of {self.node.name}")
        until = armed_until(out.stdout)
        if until and self.armed is not None:
            self.armed(until)
        return until

    def wait_back(self, ports) -> dict:
        """K3s running, the etcd member healthy, the node Ready (its
        Lease renewed since now): or EffectNotSeen naming what lacks."""
        node, transport, commands = self.node, self.transport, self.commands
        mark, started = ports.readiness_mark(node.name), time.monotonic()

        def missing() -> list[str]:
            lacking = []
            if not service.read_status(transport,
                                       commands["status"]).running:
                lacking.append("k3s running")
            if node.runs_etcd and commands.get("etcd_health") and \
                    not service.member_health(
                        transport, commands["etcd_health"])[0]:
                lacking.append("etcd member healthy")
            if not ports.ready_since(node.name, mark):
                lacking.append("node Ready (Lease renewed)")
            return lacking

        ok, seen = service.wait_until(missing, lambda m: not m, self.bound)
        if not ok:
            raise EffectNotSeen(
                node.name, self.action, commands[self.action],
                "the node back (k3s running, etcd member healthy, node "
                f"Ready) within {self.bound:g}s", f"still lacking: "
                f"{', '.join(seen) if isinstance(seen, list) else seen}")
        return {"back_at": utc_now(),
                "seconds": round(time.monotonic() - started, 3)}
