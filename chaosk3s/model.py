"""What the extension reasons about: nodes, roles, faults. Pure data."""

from dataclasses import asdict, dataclass

ROLES = ("etcd", "control-plane", "server", "agent")


@dataclass(frozen=True)
class Access:
    """How commands reach a node.

    ``netns``: run inside a network namespace on this host (the lab);
    ``ssh``: run over SSH (user, host, port, key file, optional jump host),
    host keys checked against ``known_hosts`` (ssh's own files when None)
    with ``host_key_checking`` ``strict`` or ``accept-new``; ``become``
    ``sudo`` runs every command through ``sudo -n``.
    """

    transport: str
    namespace: str | None = None
    host: str | None = None
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    jump: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    known_hosts: str | None = None
    host_key_checking: str = "strict"
    become: str | None = None


@dataclass(frozen=True)
class Node:
    name: str
    role: str
    address: str  # the first InternalIP
    join_server: str | None  # the node name its --server points at
    access: Access | None = None
    # every address of the node (IPv4 and IPv6, address first); empty
    # means just `address`
    addresses: tuple[str, ...] = ()

    @property
    def all_addresses(self) -> tuple[str, ...]:
        return self.addresses or ((self.address,) if self.address else ())

    def as_record(self) -> dict:
        """The node as plain JSON, with how to reach it: what a ledger
        keeps so a heal needs no API."""
        record = asdict(self)
        record["addresses"] = list(self.all_addresses)
        if self.access is not None:
            record["access"]["options"] = [list(o)
                                           for o in self.access.options]
        return record

    @classmethod
    def from_record(cls, record: dict) -> "Node":
        raw = record.get("access")
        access = None if raw is None else Access(**{
            **raw, "options": tuple(tuple(o) for o in raw.get("options")
                                    or ())})
        return cls(name=record["name"], role=record["role"],
                   address=record.get("address") or "",
                   join_server=record.get("join_server"), access=access,
                   addresses=tuple(record.get("addresses") or ()))

    @property
    def runs_etcd(self) -> bool:
        return self.role in ("etcd", "server")

    @property
    def runs_apiserver(self) -> bool:
        return self.role in ("control-plane", "server")


@dataclass(frozen=True)
class Topology:
    nodes: tuple[Node, ...]
    problems: tuple[str, ...] = ()  # nodes read with malformed facts

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def with_role(self, *roles: str) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role in roles)

    def at_risk(self) -> tuple[Node, ...]:
        """Nodes whose load balancer falls back to an etcd-only server
        (K3s #11311): agents and etcd-only servers that joined through
        one. Nodes with an API server of their own talk to it instead."""
        etcd_only = {n.name for n in self.with_role("etcd")}
        return tuple(n for n in self.nodes if n.join_server in etcd_only
                     and not n.runs_apiserver)


@dataclass(frozen=True)
class Cut:
    """Rules on one node that cut its traffic with one peer address.

    direction: ``both``, ``to`` (from the node to the peer) or ``from``
    (from the peer to the node); mode: ``drop`` (black hole) or
    ``reject`` (refused); ports: only these TCP ports (empty = all).
    """

    node: str
    peer: str  # peer node name
    peer_address: str
    direction: str = "both"
    mode: str = "drop"
    ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class Netem:
    """How a degraded link misbehaves (tc-netem's impairments).

    delay_ms with jitter_ms (and correlation, in %, of each delay with
    the one before); loss, duplicate, corrupt and reorder in % of
    packets; rate_bits: a bandwidth limit in bits per second (0: none).
    """

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    correlation: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    corrupt: float = 0.0
    reorder: float = 0.0
    rate_bits: int = 0


@dataclass(frozen=True)
class Degradation:
    """Packets node sends to one peer address go through netem.

    Egress only: tc shapes what leaves an interface, so a link degraded
    both ways is two Degradations, one on each end. ports: only TCP
    packets with one of these as source or destination port.
    """

    node: str
    peer: str  # peer node name
    peer_address: str
    netem: Netem
    ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class Flap:
    """A fault switched off and on by the node itself: on for on_seconds
    of every period_seconds, count periods from the apply, then off."""

    period_seconds: float
    on_seconds: float
    count: int


@dataclass(frozen=True)
class FaultPlan:
    """Everything one action injects, keyed by the run that owns it:
    cuts (iptables) and degradations (tc), each expiring after ttl."""

    run_id: str
    cuts: tuple[Cut, ...] = ()
    ttl_seconds: float = 300.0
    degradations: tuple[Degradation, ...] = ()
    flap: Flap | None = None

    def nodes(self) -> list[str]:
        return sorted({cut.node for cut in self.cuts} |
                      {d.node for d in self.degradations})
