"""One experiment's target: inventory, API access and topology together.

Activities receive Chaos Toolkit's ``configuration``; its ``target`` key
(or the CHAOSK3S_TARGET environment variable) is ``lab`` or an inventory
path. On the lab, ``lab_name`` (or CHAOSK3S_LAB_NAME) says which lab:
the target is then ``lab`` for the default lab and ``lab:N`` for lab N,
the string ledgers record, so runs, cleanups and node-side fault state of
two labs never mix (chaosk3s.namedlabs). Targets are cached per process
so a run reuses API connections.
"""

import logging
import os
from dataclasses import dataclass
from functools import cached_property

from chaosk3s import consent
from chaosk3s.consent import Consent
from chaosk3s.errors import SpecError
from chaosk3s.faults.partition import DEFAULT_STATE_DIR
from chaosk3s.inventory import Inventory, load_target
from chaosk3s.kube import Kube, KubeUnavailable
from chaosk3s.model import Node, Topology
from chaosk3s.namedlabs import (
    LabNames,
    check_lab_name,
    configured_lab_name,
    is_lab_target,
    lab_of_target,
)
from chaosk3s.topology import build_topology
from chaosk3s.transports.base import Transport, transport_for

logger = logging.getLogger("chaostoolkit")
_cache: dict[str, "Target"] = {}


__all__ = ["Target", "forget_targets", "get_target", "is_lab_target",
           "node_state_dir", "target_name"]


def target_name(configuration: dict | None) -> str:
    """``lab`` or ``lab:N`` (the lab lab_name names), or an inventory
    path; SpecError for a bad lab name or a lab:N that lab_name
    contradicts."""
    configuration = configuration or {}
    name = str(configuration.get("target") or
               os.environ.get("CHAOSK3S_TARGET") or "lab")
    given = lab_of_target(name)
    if given is None:
        return name
    if name == "lab":
        return LabNames(configured_lab_name(configuration)).target
    # lab:N given: a lab_name in the configuration must agree with it (the
    # environment's $CHAOSK3S_LAB_NAME is only a default: N wins)
    named = configuration.get("lab_name")
    if named not in (None, "") and check_lab_name(named) not in (
            given, "default"):
        raise SpecError(f"target {name} names lab {given}, but lab_name "
                        f"is {named}; give the lab once (lab_name)")
    return LabNames(given).target


def node_state_dir(name: str) -> str:
    """Where fault scripts keep state on target name's nodes: lab nodes
    share this machine's filesystem, so each lab has its own."""
    lab = lab_of_target(name)
    return DEFAULT_STATE_DIR if lab is None else LabNames(lab).fault_state_dir


def get_target(configuration: dict | None) -> "Target":
    name = target_name(configuration)
    # a lab is the lab of that name in the current state directory
    key = f"{name}:{os.environ.get('CHAOSK3S_STATE_DIR', '')}" \
        if is_lab_target(name) else name
    if key not in _cache:
        _cache[key] = Target(name, load_target(name))
    return _cache[key]


def forget_targets() -> None:
    """Close and drop cached targets (their lab or run is over)."""
    for target in _cache.values():
        target.close()
    _cache.clear()


@dataclass
class Target:
    name: str
    inventory: Inventory

    def __post_init__(self) -> None:
        self._transports: dict[str, Transport] = {}
        self._consent: Consent | None = None

    @property
    def node_state_dir(self) -> str:
        """Where fault scripts keep their state on this target's nodes."""
        return node_state_dir(self.name)

    def check_consent(self) -> Consent:
        """The cluster's consent to runs with this inventory
        (chaosk3s.consent: its identity and its ConfigMap, read from the
        API); NotConsented, with nothing changed, when it has not given
        it. Read once per target: a run's later activities (and those
        that work while the API is down) rely on the first read, and the
        control's abort watch follows the consent from then on."""
        if self._consent is None:
            self._consent = consent.check(self.inventory, self.kube)
        return self._consent

    @cached_property
    def kube(self) -> Kube:
        return Kube(self.inventory.kubeconfig, list(self.inventory.contexts))

    def topology(self, wait: float = 10) -> Topology:
        """Read fresh from the API (nodes come and go), riding out a
        brief outage such as a control-plane restart for `wait` s. With
        the whole control plane down, fall back to the inventory's own
        roles so that starting it again is still possible."""
        try:
            items = self.kube.list_nodes(wait=wait)["items"]
        except KubeUnavailable:
            return self._inventory_topology()
        return build_topology(items, self.inventory)

    def labelled(self, selector: str) -> list[str]:
        """The names of the nodes a label selector matches, from the API."""
        return [item["metadata"]["name"] for item in
                self.kube.list_nodes(selector)["items"]]

    def _inventory_topology(self) -> Topology:
        entries = list(self.inventory.nodes.values())
        if not entries or any(e.role is None for e in entries):
            raise KubeUnavailable(
                f"no API server of {self.name} answers, and the inventory "
                f"{self.inventory.source} does not give every node's role "
                f"to act without it")
        logger.warning("no API server answers; using the roles in %s",
                       self.inventory.source)
        return Topology(tuple(
            Node(e.name, e.role, e.address or "", e.join_server, e.access)
            for e in entries))

    def reachable(self, nodes) -> list[Node]:
        """The nodes the inventory says how to reach. Others (such as the
        lab's virtual nodes, which have no machine) are left out of
        anything that runs commands; an empty result is an error."""
        chosen = [n for n in nodes if n.access is not None]
        if nodes and not chosen:
            raise SpecError(
                f"none of {', '.join(n.name for n in nodes)} can be reached:"
                f" the inventory {self.inventory.source} gives no transport "
                f"for them; nothing was changed")
        return chosen

    def transport(self, node: Node) -> Transport:
        """The node's transport, reused for the whole run."""
        if node.name not in self._transports:
            self._transports[node.name] = transport_for(node)
        return self._transports[node.name]

    def transports(self, nodes: list[Node] | None = None
                   ) -> dict[str, Transport]:
        """Transports of the given nodes, or of every reachable node."""
        chosen = nodes if nodes is not None else self.reachable(
            self.topology().nodes)
        return {node.name: self.transport(node) for node in chosen}

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()
