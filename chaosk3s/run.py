"""The run that activities belong to: its id, target, ledger and faults.

The chaosk3s control begins a run when the experiment starts; activities
used without the control get an implicit run of their own, so their
faults are still recorded and healable. A run's faults are owned by its
FaultSession (chaosk3s.faults.session), which reaches the target through
TargetPorts.
"""

import threading
from dataclasses import dataclass, field

from kubernetes import client

from chaosk3s.errors import ChaosK3sError
from chaosk3s.faults.session import FaultSession
from chaosk3s.kube import Kube, ready_status
from chaosk3s.ledger import Ledger, new_run_id
from chaosk3s.model import Node
from chaosk3s.target import Target, get_target, node_state_dir, target_name
from chaosk3s.transports.base import Transport

NODE_LEASES = "kube-node-lease"


@dataclass
class TargetPorts:
    """A FaultSession's way to a target: transports and commands from the
    inventory (the target is loaded when first needed, so a heal from the
    ledger works with the API down), readiness from the API."""

    name: str
    _target: Target | None = field(default=None, repr=False)

    @property
    def target(self) -> Target:
        if self._target is None:
            self._target = get_target({"target": self.name})
        return self._target

    def transport(self, node: Node) -> Transport:
        return self.target.transport(node)

    def node(self, name: str) -> Node | None:
        entry = self.target.inventory.nodes.get(name)
        if entry is None or entry.access is None:
            return None
        return Node(name, entry.role or "agent", entry.address or "",
                    entry.join_server, entry.access)

    def commands(self, node: Node) -> dict[str, str]:
        inventory = self.target.inventory
        return {action: inventory.command(node.role, action, node.name)
                for action in inventory.commands_for(node.role)}

    def api(self) -> Kube:
        """The target's API (a cordon's apply and heal go through it)."""
        return self.target.kube

    def _renewed(self, node: str) -> str | None:
        lease = self.target.kube.call(
            "read_namespaced_lease", timeout=5,
            api=client.CoordinationV1Api, name=node, namespace=NODE_LEASES)
        return (lease.get("spec") or {}).get("renewTime")

    def readiness_mark(self, node: str) -> object:
        """The node's Lease renewTime now (None if it cannot be read)."""
        try:
            return self._renewed(node)
        except (ChaosK3sError, OSError):
            return None

    def ready_since(self, node: str, mark: object) -> bool:
        """Ready, and its kubelet renewed the Lease since mark: a
        kubelet that came back, not the status of one that left."""
        try:
            ready = ready_status(self.target.kube.call(
                "read_node", timeout=5, name=node))[0] == "True"
            return ready and (mark is None or self._renewed(node) != mark)
        except (ChaosK3sError, OSError):
            return False


@dataclass
class Run:
    ledger: Ledger
    session: FaultSession
    # What write_marker wrote (chaosk3s.markers), for marker_readback.
    marker: dict | None = None
    # The experiment's method has begun (the control says so): what the
    # steady state expects may differ before it (probes.nodes_at_version).
    method_started: bool = False

    @property
    def run_id(self) -> str:
        return self.ledger.run_id


_current: Run | None = None
_lock = threading.Lock()  # background activities may race to begin one


def new_run(target: str, run_id: str | None = None) -> Run:
    ledger = Ledger(run_id or new_run_id(), target)
    return Run(ledger, FaultSession(ledger, TargetPorts(target),
                                    node_state_dir(target)))


def begin_run(target: str) -> Run:
    global _current
    with _lock:
        _current = new_run(target)
        return _current


def current_run(configuration: dict | None) -> Run:
    """The control's run, or an implicit one for this target."""
    global _current
    name = target_name(configuration)
    with _lock:
        if _current is None or _current.ledger.target != name:
            _current = new_run(name)
        return _current


def end_run() -> None:
    global _current
    with _lock:
        _current = None
