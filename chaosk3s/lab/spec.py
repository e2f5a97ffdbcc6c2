"""The lab spec: which nodes, which roles, which K3s release, which timings.

A spec is validated completely before anything is created, so a bad spec
changes nothing on the machine.
"""

import ipaddress
import re
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from chaosk3s.errors import SpecError
from chaosk3s.lab.releases import Release, parse_release
from chaosk3s.lab.timings import Timings

ROLES = ("etcd", "control-plane", "server", "agent")
ETCD_ROLES = ("etcd", "server")
APISERVER_ROLES = ("control-plane", "server")
# The fixed 1.28 build that the write-up of the #11311 fix validated.
DEFAULT_VERSION = "v1.28.15+k3s-2d0661e3"
DEFAULT_SUBNET = "10.213.11.0/24"
NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,28}[a-z0-9])?$")
FIRST_NODE_HOST = 10  # node addresses start at .10; .1 is the host


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: str
    address: str
    server: str | None  # join server's node name; None for cluster-init
    address6: str | None = None  # its IPv6 address on a dual-stack lab
    # The node's own release when it differs from the lab's (a node in
    # the middle of a rolling upgrade); None: the lab's.
    k3s_version: str | None = None

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.address,) + ((self.address6,) if self.address6
                                  else ())

    @property
    def runs_etcd(self) -> bool:
        return self.role in ETCD_ROLES

    @property
    def runs_apiserver(self) -> bool:
        return self.role in APISERVER_ROLES

    @property
    def is_server(self) -> bool:
        return self.role != "agent"


@dataclass(frozen=True)
class LabSpec:
    subnet: str
    release: Release
    timings: Timings
    nodes: tuple[NodeSpec, ...]
    virtual_nodes: int = 0
    ssh: bool = False
    ssh_sudo: bool = False  # ssh as the operator account, become sudo
    source: str = "<default>"
    subnet6: str | None = None  # dual stack: IPv6 on the bridge too

    @property
    def host_address(self) -> str:
        """The host's own address on the lab bridge (.1)."""
        return str(ipaddress.ip_network(self.subnet)[1])

    @property
    def prefix_length(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    @property
    def host_address6(self) -> str | None:
        return str(ipaddress.ip_network(self.subnet6)[1]) if self.subnet6 \
            else None

    def release_of(self, node: NodeSpec) -> Release:
        """The release node runs: its own, else the lab's."""
        return parse_release(node.k3s_version) if node.k3s_version \
            else self.release

    def node(self, name: str) -> NodeSpec:
        for node in self.nodes:
            if node.name == name:
                return node
        raise SpecError(
            f"no lab node named {name!r}; nodes: "
            f"{', '.join(n.name for n in self.nodes)}")


DEFAULT_NODES = [
    {"name": "server-etcd-0", "role": "etcd"},
    {"name": "server-etcd-1", "role": "etcd", "server": "server-etcd-0"},
    {"name": "server-etcd-2", "role": "etcd", "server": "server-etcd-0"},
    {"name": "server-cp-0", "role": "control-plane",
     "server": "server-etcd-0"},
    {"name": "agent-0", "role": "agent", "server": "server-etcd-0"},
    {"name": "agent-1", "role": "agent", "server": "server-etcd-0"},
]


def default_spec(k3s_version: str | None = None) -> LabSpec:
    """The #11311 reproduction: every node joins via server-etcd-0."""
    raw = {"nodes": DEFAULT_NODES}
    if k3s_version:
        raw["k3s_version"] = k3s_version
    return parse_spec(raw, source="<default>")


def load_spec(spec: str | Path | dict | None,
              k3s_version: str | None = None,
              timings: str | dict | None = None) -> LabSpec:
    """Read and validate a spec: a file, a mapping (a spec inline in an
    experiment's configuration) or None (the default); k3s_version and
    timings (a profile name or a mapping), when given, override the
    spec's release and timings."""
    if spec is None:
        raw, source = {"nodes": DEFAULT_NODES}, "<default>"
    elif isinstance(spec, dict):
        raw, source = spec, "the experiment's lab_spec"
    else:
        raw, source = _read_yaml(Path(spec)), str(spec)
    if k3s_version:
        raw = {**(raw or {}), "k3s_version": k3s_version}
    if timings:
        raw = {**(raw or {}), "timings": timings}
    return parse_spec(raw, source=source)


def _read_yaml(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(
            f"cannot read lab spec {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(
            f"lab spec {path} is not valid YAML: {exc}") from exc


_TOP_KEYS = {"subnet", "k3s_version", "timings", "nodes", "virtual_nodes",
             "ssh", "subnet6"}
DEFAULT_SUBNET6 = "fd13:11::/64"  # `lab up --dual-stack`
_NODE_KEYS = {"name", "role", "server", "address", "k3s_version"}


def parse_spec(raw: object, source: str = "<spec>") -> LabSpec:
    """Validate a spec mapping; raise SpecError naming the problem."""
    try:
        return _parse(raw, source)
    except SpecError as exc:
        raise SpecError(f"invalid lab spec {source}: {exc}") from exc


def _parse(raw: object, source: str) -> LabSpec:
    if not isinstance(raw, dict):
        raise SpecError("the spec must be a YAML mapping with a nodes list")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise SpecError(f"unknown key(s) {', '.join(unknown)}; known keys: "
                        f"{', '.join(sorted(_TOP_KEYS))}")
    subnet = _parse_subnet(raw.get("subnet", DEFAULT_SUBNET))
    try:
        release = parse_release(str(raw.get("k3s_version", DEFAULT_VERSION)))
    except ValueError as exc:
        raise SpecError(str(exc)) from exc
    virtual = raw.get("virtual_nodes", 0)
    if not isinstance(virtual, int) or isinstance(virtual, bool) or not (
            0 <= virtual <= 20000):
        raise SpecError("virtual_nodes must be a whole number from 0 to 20000")
    subnet6 = _parse_subnet6(raw.get("subnet6"))
    nodes = _parse_nodes(raw.get("nodes"), subnet)
    return LabSpec(subnet=str(subnet), release=release,
                   timings=Timings.from_spec(raw.get("timings"),
                                             release.minor),
                   nodes=with_ipv6(nodes, subnet6),
                   virtual_nodes=virtual, ssh=raw.get("ssh") in (True, "sudo"),
                   ssh_sudo=_ssh_sudo(raw.get("ssh", False)), source=source,
                   subnet6=subnet6)


def _ssh_sudo(value: object) -> bool:
    """`ssh: true` (root), `ssh: sudo` (the operator account) or false."""
    if value not in (True, False, None, "sudo"):
        raise SpecError(f"ssh {value!r}: use true (as root), sudo (as a "
                        f"non-root operator with sudo) or false")
    return value == "sudo"


def _parse_subnet6(value: object) -> str | None:
    if value is None:
        return None
    return str(_parse_network(value, 6, "subnet6", 120))


def dual_stack(spec: LabSpec, subnet6: str = DEFAULT_SUBNET6) -> LabSpec:
    """spec with IPv6 on the bridge and on every node (`--dual-stack`)."""
    subnet6 = spec.subnet6 or _parse_subnet6(subnet6)
    return replace(spec, subnet6=subnet6,
                   nodes=with_ipv6(spec.nodes, subnet6))


def with_ipv6(nodes: tuple[NodeSpec, ...],
              subnet6: str | None) -> tuple[NodeSpec, ...]:
    """Each node's IPv6 address: the same host number as its IPv4 one."""
    if subnet6 is None:
        return tuple(replace(n, address6=None) for n in nodes)
    network = ipaddress.IPv6Network(subnet6)
    return tuple(replace(n, address6=str(network[int(
        ipaddress.IPv4Address(n.address).packed[-1])])) for n in nodes)


def _parse_subnet(value: object) -> ipaddress.IPv4Network:
    return _parse_network(value, 4, "subnet", 26)


def _parse_network(value: object, version: int, key: str,
                   longest: int) -> ipaddress.IPv4Network:
    kind = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    try:
        subnet = kind(str(value), strict=True)
    except ValueError as exc:
        raise SpecError(f"{key} {value!r} is not an IPv{version} network: "
                        f"{exc}") from exc
    if subnet.prefixlen > longest:
        raise SpecError(f"{key} {subnet} is too small; use a /{longest} or "
                        f"larger")
    return subnet


def _parse_nodes(raw: object, subnet: ipaddress.IPv4Network
                 ) -> tuple[NodeSpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise SpecError("nodes must be a non-empty list")
    hosts = list(subnet.hosts())
    nodes, names, addresses = [], set(), set()
    for index, item in enumerate(raw):
        node = _parse_node(item, index, hosts)
        if node.name in names:
            raise SpecError(f"duplicate node name {node.name!r}")
        if node.address in addresses:
            raise SpecError(f"duplicate address {node.address}")
        names.add(node.name)
        addresses.add(node.address)
        nodes.append(node)
    _check_joins(nodes)
    return tuple(nodes)


def _parse_node(item: object, index: int, hosts: list) -> NodeSpec:
    if not isinstance(item, dict) or "name" not in item:
        raise SpecError(f"node #{index + 1} must be a mapping with a name")
    name = str(item["name"])
    unknown = sorted(set(item) - _NODE_KEYS)
    if unknown:
        raise SpecError(f"node {name}: unknown key(s) {', '.join(unknown)}; "
                        f"known keys: {', '.join(sorted(_NODE_KEYS))}")
    if not NODE_NAME.match(name):
        raise SpecError(
            f"node name {name!r} must be 1-30 lower-case letters, digits or "
            f"'-', starting and ending with a letter or digit")
    role = item.get("role")
    if role not in ROLES:
        raise SpecError(f"node {name}: unknown role {role!r}; roles are "
                        f"{', '.join(ROLES)}")
    address = item.get("address") or str(hosts[FIRST_NODE_HOST - 1 + index])
    if ipaddress.ip_address(address) not in hosts[1:]:
        raise SpecError(f"node {name}: address {address} is not a usable "
                        f"node address in the subnet (.1 is the host's)")
    server = item.get("server")
    return NodeSpec(name=name, role=role, address=str(address),
                    server=str(server) if server is not None else None,
                    k3s_version=_node_release(name, item))


def _node_release(name: str, item: dict) -> str | None:
    """A node's own release (checked like the lab's), or None."""
    if item.get("k3s_version") is None:
        return None
    try:
        return parse_release(str(item["k3s_version"])).version
    except ValueError as exc:
        raise SpecError(f"node {name}: {exc}") from exc


def _check_joins(nodes: list[NodeSpec]) -> None:
    by_name = {node.name: node for node in nodes}
    if not any(node.runs_etcd for node in nodes):
        raise SpecError("no etcd-capable server: at least one node needs "
                        "role etcd or server")
    first = [node for node in nodes if node.server is None]
    for node in nodes:
        if node.server is None:
            continue
        if node.server == node.name:
            raise SpecError(f"node {node.name} joins through itself; name "
                            f"another server, or omit server on the "
                            f"cluster-init node")
        join = by_name.get(node.server)
        if join is None:
            raise SpecError(f"node {node.name}: unknown join server "
                            f"{node.server!r}")
        if not join.is_server:
            raise SpecError(f"node {node.name}: join server {join.name} is "
                            f"an agent; join through a server")
    if len(first) != 1 or not first[0].runs_etcd:
        raise SpecError(
            "exactly one node must omit server: the cluster-init server, "
            "with role etcd or server; every other node names its join "
            f"server (nodes without one: "
            f"{', '.join(n.name for n in first) or 'none'})")
    for node in nodes:
        _check_chain(node, by_name)


def _check_chain(node: NodeSpec, by_name: dict[str, NodeSpec]) -> None:
    """Every join chain must end at the cluster-init server."""
    seen = [node.name]
    while by_name[seen[-1]].server is not None:
        seen.append(by_name[seen[-1]].server)
        if seen[-1] in seen[:-1]:
            raise SpecError(f"join servers form a loop: "
                            f"{' -> '.join(seen)}")
