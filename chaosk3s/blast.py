"""Blast-radius caps: how much of each role a run may fault at once.

The inventory says, per role, how many nodes one fault may act on
(`per_fault`) and how many this run's open faults together may hold
(`per_run`), as a number of nodes or a share of the role:

    blast_radius:
      per_fault: {default: 50%, agent: 2}
      per_run:   {default: 50%, etcd: 1}

Roles are etcd, control-plane, server and agent; `default` covers the
roles not named. A share rounds down but never below one node, so a
role of a single node can still be faulted (restarting the only
control-plane server is what node_restart does); 0 forbids the role.
Without blast_radius, every role is capped at 50% per fault and per
run: on three etcd members, one at a time. The lab's own inventory
allows everything (100%): it exists to be broken.

A fault's nodes are those it acts on: the nodes that get a partition's
rules (its group, not its peers), the nodes K3s is stopped, restarted or
rebooted on. Checked before anything is applied: per fault when the
action is planned, per run with this run's open faults (in the ledger's
lock, with the quorum guard), and for the whole experiment by the
control and `chaosk3s plan` before the steady state.
"""

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from chaosk3s.errors import SpecError
from chaosk3s.model import ROLES, Topology

DEFAULT_SHARE = 50.0  # percent, per fault and per run


@dataclass(frozen=True)
class Cap:
    """A number of nodes, or a share (percent) of a role."""

    nodes: int | None = None
    share: float | None = None

    def limit(self, total: int) -> int:
        if self.nodes is not None:
            return self.nodes
        if not self.share:
            return 0
        return max(1, math.floor(total * self.share / 100 + 1e-9))

    def __str__(self) -> str:
        return f"{self.share:g}%" if self.nodes is None else str(self.nodes)


def parse_cap(value: int | str) -> Cap:
    """3 or "50%" (what the schema let through) as a Cap."""
    if isinstance(value, int):
        return Cap(nodes=value)
    return Cap(share=float(value.strip().rstrip("%")))


@dataclass(frozen=True)
class Caps:
    """Caps per role, one set per fault and one per run."""

    per_fault: dict[str, Cap] = field(default_factory=dict)
    per_run: dict[str, Cap] = field(default_factory=dict)

    @staticmethod
    def of(given: dict | None) -> "Caps":
        """From the inventory's blast_radius mapping (None: defaults)."""
        given = given or {}

        def side(name: str) -> dict[str, Cap]:
            raw = given.get(name) or {}
            default = parse_cap(raw["default"]) if "default" in raw \
                else Cap(share=DEFAULT_SHARE)
            return {role: parse_cap(raw[role]) if role in raw else default
                    for role in ROLES}
        return Caps(side("per_fault"), side("per_run"))


def _by_role(topology: Topology, names: Iterable[str]) -> Counter:
    roles = {n.name: n.role for n in topology.nodes}
    return Counter(roles[n] for n in set(names) if n in roles)


def _over(caps: dict[str, Cap], topology: Topology, names: Iterable[str]
          ) -> list[str]:
    """'agent: 3 of 4 nodes, cap 50% (2)' per role over its cap."""
    totals = Counter(n.role for n in topology.nodes)
    over = []
    for role, count in sorted(_by_role(topology, names).items()):
        limit = caps[role].limit(totals[role])
        if count > limit:
            over.append(f"{role}: {count} of {totals[role]} node(s), cap "
                        f"{caps[role]} ({limit})")
    return over


def held_nodes(entries: list[dict]) -> set[str]:
    """Nodes this run's open faults hold (the ledger's entries)."""
    return {n for e in entries if not e.get("ended_at")
            for n in e.get("open_nodes", e.get("nodes")) or ()}


def check_blast(caps: Caps, topology: Topology, what: str,
                nodes: Iterable[str], entries: list[dict] = ()) -> None:
    """Refuse `what` (acting on nodes) if it alone exceeds a per-fault
    cap, or with this run's open faults (entries) a per-run cap."""
    nodes = set(nodes)
    problems = [f"per fault: {p}" for p in _over(caps.per_fault, topology,
                                                   nodes)]
    held = held_nodes(entries)
    problems += [f"per run, with this run's open faults on "
                 f"{', '.join(sorted(held)) or 'no node'}: {p}"
                 for p in _over(caps.per_run, topology, nodes | held)]
    if problems:
        raise SpecError(
            f"refused by the blast-radius caps: {what} ("
            f"{', '.join(sorted(nodes))}) exceeds {'; '.join(problems)}; "
            f"nothing was changed. Act on fewer nodes at a time, or raise "
            f"blast_radius in the inventory")


def describe(caps: Caps, topology: Topology) -> str:
    """The caps as `chaosk3s plan` prints them, with their node counts."""
    totals = Counter(n.role for n in topology.nodes)
    parts = []
    for role in ROLES:
        if totals[role]:
            fault, run = caps.per_fault[role], caps.per_run[role]
            parts.append(f"{role} {fault.limit(totals[role])} per fault "
                         f"({fault}), {run.limit(totals[role])} per run "
                         f"({run}) of {totals[role]}")
    return "; ".join(parts)
