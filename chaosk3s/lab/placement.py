"""Where a lab goes on this machine: its subnet, chosen under a lock.

The default lab keeps 10.213.11.0/24 (and fd13:11::/64 when dual-stack),
or its spec's subnet. A named lab whose spec leaves the subnet at that
default gets a /24 of its own in 10.213.128.0/17 instead: the first of
its candidates, in an order derived from its name (sha256, so the same
on every machine), that overlaps no route of the host. Other labs' bridges
carry their subnets as routes, so a lab never takes another lab's subnet;
the choice and the bridge that claims it happen under one machine-wide
lock, so two `lab up` at once cannot choose the same one. Its IPv6 /64
follows its /24 (10.213.X.0/24 -> fd13:X in hex::/64).
"""

import hashlib
import ipaddress
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path

from chaosk3s.errors import EnvironmentProblem
from chaosk3s.files import exclusive_lock
from chaosk3s.lab.hostnet import check_subnet_free, overlapping_route
from chaosk3s.lab.spec import (
    DEFAULT_SUBNET,
    DEFAULT_SUBNET6,
    LabSpec,
    with_ipv6,
)
from chaosk3s.namedlabs import LabNames

LOCK = Path("/run/lock/chaosk3s-labs.lock")
NAMED_FIRST = 128  # named labs: 10.213.128.0/24 .. 10.213.255.0/24
NAMED_SLOTS = 128


def placement_lock(path: Path = LOCK) -> AbstractContextManager[None]:
    """Held while a lab chooses its subnet and claims it with its bridge
    (and while `lab down` removes one), machine-wide."""
    return exclusive_lock(path)


def candidates(name: str) -> list[tuple[str, str]]:
    """A named lab's (subnet, subnet6) pairs, most preferred first."""
    start = int(hashlib.sha256(name.encode()).hexdigest(), 16) % NAMED_SLOTS
    pairs = []
    for step in range(NAMED_SLOTS):
        third = NAMED_FIRST + (start + step) % NAMED_SLOTS
        pairs.append((f"10.213.{third}.0/24", f"fd13:{third:x}::/64"))
    return pairs


def place(spec: LabSpec, names: LabNames) -> LabSpec:
    """spec on a subnet free on this machine; EnvironmentProblem when
    its own subnet is taken, or every candidate is. Call it under
    placement_lock, and create the bridge before releasing it."""
    own = names.bridge
    if names.is_default or spec.subnet != DEFAULT_SUBNET:
        check_subnet_free(spec.subnet, own_bridge=own)
        if spec.subnet6:
            check_subnet_free(spec.subnet6, "subnet6", own_bridge=own)
        return spec
    keep6 = spec.subnet6 if spec.subnet6 != DEFAULT_SUBNET6 else None
    if keep6:
        check_subnet_free(keep6, "subnet6", own_bridge=own)
    for subnet, subnet6 in candidates(names.name):
        six = (keep6 or subnet6) if spec.subnet6 else None
        if overlapping_route(subnet, own) is None and (
                keep6 or six is None or overlapping_route(six, own) is None):
            return moved(spec, subnet, six)
    raise EnvironmentProblem(
        f"lab {names.name}: every subnet of 10.213.128.0/17 is taken by "
        f"other labs or host routes; take a lab down (`chaosk3s lab list`) "
        f"or set subnet in the lab spec")


def moved(spec: LabSpec, subnet: str, subnet6: str | None) -> LabSpec:
    """spec on subnet (and subnet6): each node keeps its host number."""
    old, new = (ipaddress.IPv4Network(spec.subnet),
                ipaddress.IPv4Network(subnet))
    if old.prefixlen != new.prefixlen:
        raise ValueError(f"cannot move a /{old.prefixlen} to {subnet}")
    base = int(old.network_address)
    nodes = tuple(replace(node, address=str(new[int(
        ipaddress.IPv4Address(node.address)) - base])) for node in spec.nodes)
    return replace(spec, subnet=str(new), subnet6=subnet6,
                   nodes=with_ipv6(nodes, subnet6))
