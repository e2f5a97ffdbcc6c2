"""Refusals made before anything is touched: etcd quorum, allowed lists.

Pure functions over a Topology and the planned faults, so they are
tested without a cluster and run before any command reaches a node.
"""

from chaosk3s.errors import SpecError
from chaosk3s.model import Cut, Topology


def _members(topology: Topology) -> list[str]:
    return [n.name for n in topology.nodes if n.runs_etcd]


def check_partition_quorum(topology: Topology, cuts: list[Cut],
                           force: bool = False) -> None:
    """Refuse cuts that leave no etcd majority able to talk to itself."""
    members = _members(topology)
    cut_pairs = {frozenset((c.node, c.peer)) for c in cuts}
    groups: list[set[str]] = []
    for member in members:
        linked = [g for g in groups
                  if any(frozenset((member, o)) not in cut_pairs for o in g)]
        merged = {member}.union(*linked)
        groups = [g for g in groups if g not in linked] + [merged]
    largest = max((len(g) for g in groups), default=0)
    if members and largest * 2 <= len(members) and not force:
        raise SpecError(
            f"refused: this partition leaves etcd without quorum (largest "
            f"group of members that can talk: {largest} of "
            f"{len(members)}: {', '.join(sorted(max(groups, key=len)))}); "
            f"nothing was changed. Pass force=true to do it anyway")


def check_stop_quorum(topology: Topology, stopping: list[str],
                      force: bool = False) -> None:
    """Refuse stopping so many etcd members at once that quorum is lost."""
    members = _members(topology)
    down = sorted(set(stopping) & set(members))
    if members and (len(members) - len(down)) * 2 <= len(members) \
            and not force:
        raise SpecError(
            f"refused: stopping {', '.join(down)} at once leaves "
            f"{len(members) - len(down)} of {len(members)} etcd members, "
            f"no quorum; nothing was changed. Act on fewer etcd nodes at a "
            f"time (one_at_a_time=true) or pass force=true")
