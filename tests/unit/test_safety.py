"""The quorum guard refuses what would leave etcd without a majority."""

import pytest

from chaosk3s.errors import SpecError
from chaosk3s.model import Cut, Node, Topology
from chaosk3s.safety import check_partition_quorum, check_stop_quorum

TOPO = Topology(tuple(
    [Node(f"e{i}", "etcd", f"10.0.0.{i}", None) for i in range(3)] +
    [Node("c0", "control-plane", "10.0.0.9", "e0"),
     Node("a0", "agent", "10.0.0.20", "e0")]))


def _cut(a: str, b: str) -> Cut:
    return Cut(node=a, peer=b, peer_address=TOPO.node(b).address)


def test_isolating_one_member_keeps_quorum():
    check_partition_quorum(TOPO, [_cut("e0", "e1"), _cut("e0", "e2")])


def test_splitting_every_member_is_refused():
    cuts = [_cut("e0", "e1"), _cut("e0", "e2"), _cut("e1", "e2")]
    with pytest.raises(SpecError, match="without quorum.*1 of 3"):
        check_partition_quorum(TOPO, cuts)
    check_partition_quorum(TOPO, cuts, force=True)


def test_cutting_non_members_never_matters():
    check_partition_quorum(TOPO, [_cut("a0", "c0"), _cut("a0", "e0")])


def test_stopping_a_majority_is_refused():
    check_stop_quorum(TOPO, ["e0", "a0", "c0"])
    with pytest.raises(SpecError, match="without quorum.*1 of 3"):
        check_stop_quorum(TOPO, ["e0", "e2"])
    check_stop_quorum(TOPO, ["e0", "e2"], force=True)
