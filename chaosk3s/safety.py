"""Refusals made before anything is touched: etcd quorum, allowed lists.

The quorum guard is cumulative: an EtcdState holds every member and what
already keeps each from voting (down: stopped, restarting, unhealthy,
unreadable) or from talking to another (cut pairs), gathered from this
run's open faults, other runs' faults read back from the nodes, and the
members' live health (chaosk3s.faults.guard). A change is refused when
the state *with* it leaves no majority of members that can all reach
each other. Pure functions, so they are tested without a cluster and run
before any command reaches a node.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from chaosk3s.errors import SpecError
from chaosk3s.model import Cut, Topology

ETCD_PEER_PORT = 2380  # raft traffic between members


def members_of(topology: Topology) -> tuple[str, ...]:
    return tuple(n.name for n in topology.nodes if n.runs_etcd)


@dataclass(frozen=True)
class EtcdState:
    """Members, and why some cannot vote or cannot reach each other."""

    members: tuple[str, ...]
    down: Mapping[str, str] = field(default_factory=dict)
    cuts: Mapping[frozenset, str] = field(default_factory=dict)

    def plus(self, down: Mapping[str, str] | None = None,
             cuts: Mapping[frozenset, str] | None = None) -> "EtcdState":
        """This state with more down members and cut pairs; what does not
        concern members (agents, control-plane-only servers) is dropped."""
        added_down = {m: why for m, why in (down or {}).items()
                      if m in self.members and m not in self.down}
        added_cuts = {p: why for p, why in (cuts or {}).items()
                      if p <= set(self.members) and len(p) == 2
                      and p not in self.cuts}
        return EtcdState(self.members, {**self.down, **added_down},
                         {**self.cuts, **added_cuts})

    def concerns(self, down: Iterable[str], cuts: Iterable[frozenset]
                 ) -> bool:
        """Whether such a change touches any member at all."""
        members = set(self.members)
        return bool(set(down) & members) or any(
            p <= members and len(p) == 2 for p in cuts)

    def largest_group(self) -> set[str]:
        """The largest set of up members that can all reach each other
        through links no fault cuts (connected components)."""
        groups: list[set[str]] = []
        for member in (m for m in self.members if m not in self.down):
            linked = [g for g in groups if any(
                frozenset((member, o)) not in self.cuts for o in g)]
            merged = {member}.union(*linked)
            groups = [g for g in groups if g not in linked] + [merged]
        return max(groups, key=lambda g: (len(g), sorted(g)), default=set())

    def has_quorum(self) -> bool:
        return not self.members or \
            len(self.largest_group()) * 2 > len(self.members)

    def explain(self) -> str:
        group = self.largest_group()
        parts = [f"largest group of members that can talk: {len(group)} of "
                 f"{len(self.members)} ({', '.join(sorted(group)) or '-'})"]
        if self.down:
            parts.append("down: " + "; ".join(
                f"{m} ({why})" for m, why in sorted(self.down.items())))
        if self.cuts:
            parts.append("cut: " + "; ".join(
                f"{' <-> '.join(sorted(p))} ({why})"
                for p, why in sorted(self.cuts.items(),
                                     key=lambda item: sorted(item[0]))))
        return "; ".join(parts)


def check_quorum(state: EtcdState, what: str,
                 down: Mapping[str, str] | None = None,
                 cuts: Mapping[frozenset, str] | None = None,
                 force: bool = False) -> None:
    """Refuse `what` (which adds down and cuts) if the state with it has
    no etcd majority. A change that concerns no member passes."""
    if force or not state.concerns(down or {}, cuts or {}):
        return
    after = state.plus(down, cuts)
    if not after.has_quorum():
        raise SpecError(
            f"refused: {what} would leave etcd without quorum ("
            f"{after.explain()}); nothing was changed. Wait for the "
            f"members to be back, act on fewer at a time, or pass "
            f"force=true to do it anyway")


def cut_pairs(cuts: Iterable[Cut]) -> set[frozenset]:
    """The node pairs a partition's cuts separate, for the guard: a cut
    limited to ports that leave etcd's peer port open separates none."""
    return {frozenset((c.node, c.peer)) for c in cuts
            if not c.ports or ETCD_PEER_PORT in c.ports}


def check_partition_quorum(topology: Topology, cuts: list[Cut],
                           force: bool = False) -> None:
    """Refuse cuts that, alone, leave no etcd majority able to talk."""
    check_quorum(EtcdState(members_of(topology)), "this partition",
                 cuts=dict.fromkeys(cut_pairs(cuts), "this partition"),
                 force=force)


def check_stop_quorum(topology: Topology, stopping: list[str],
                      force: bool = False) -> None:
    """Refuse stopping, alone, so many etcd members that quorum is lost."""
    check_quorum(EtcdState(members_of(topology)),
                 f"stopping {', '.join(sorted(stopping))} at once",
                 down=dict.fromkeys(stopping, "this action"), force=force)
