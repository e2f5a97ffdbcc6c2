"""Blast-radius caps: per fault and per run, numbers and shares, the
defaults, and the inventory keys that set them."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
from chaoslib.configuration import load_configuration

from chaosk3s.blast import Caps, check_blast, describe
from chaosk3s.errors import SpecError
from chaosk3s.experiment_check import check_blast_radius
from chaosk3s.inventory import parse_inventory
from chaosk3s.model import Access, Node, Topology

# three etcd-only servers, one control-plane server, four agents
TOPOLOGY = Topology(tuple(
    [Node(f"e{i}", "etcd", f"10.0.0.{i}", "e0" if i else None)
     for i in range(3)] +
    [Node("c0", "control-plane", "10.0.0.10", "e0")] +
    [Node(f"a{i}", "agent", f"10.0.0.2{i}", "e0") for i in range(4)]))


def _open(*nodes: str, ended: bool = False) -> dict:
    return {"id": "f1", "kind": "partition", "nodes": list(nodes),
            "ended_at": "2026-01-07T10:00:00+00:00" if ended else None}


def test_the_defaults_allow_half_of_a_role_and_one_of_a_single_node():
    caps = Caps.of(None)
    check_blast(caps, TOPOLOGY, "a partition", ["a0", "a1"])
    check_blast(caps, TOPOLOGY, "restart", ["c0"])  # the only one
    check_blast(caps, TOPOLOGY, "stop", ["e0"])
    with pytest.raises(SpecError) as refused:
        check_blast(caps, TOPOLOGY, "a partition", ["a0", "a1", "a2"])
    assert str(refused.value) == (
        "refused by the blast-radius caps: a partition (a0, a1, a2) exceeds "
        "per fault: agent: 3 of 4 node(s), cap 50% (2); per run, with this "
        "run's open faults on no node: agent: 3 of 4 node(s), cap 50% (2); "
        "nothing was changed. Act on fewer nodes at a time, or raise "
        "blast_radius in the inventory")
    with pytest.raises(SpecError, match="etcd: 2 of 3 node"):
        check_blast(caps, TOPOLOGY, "stop", ["e0", "e1"])


def test_per_run_counts_this_runs_open_faults_only():
    caps = Caps.of({"per_fault": {"default": "100%"},
                    "per_run": {"agent": 3}})
    check_blast(caps, TOPOLOGY, "cut", ["a2"], [_open("a0", "a1")])
    with pytest.raises(SpecError, match=r"per run, with this run's open "
                       r"faults on a0, a1, a2: agent: 4 of 4 node\(s\), "
                       r"cap 3 \(3\)"):
        check_blast(caps, TOPOLOGY, "cut", ["a3"], [_open("a0", "a1"),
                                                    _open("a2")])
    # a healed fault holds nothing; a partly healed one what is left
    check_blast(caps, TOPOLOGY, "cut", ["a3"], [
        _open("a0", "a1", ended=True), _open("a2")])
    check_blast(caps, TOPOLOGY, "cut", ["a3"], [
        {**_open("a0", "a1", "a2"), "open_nodes": ["a2"]}])


def test_zero_forbids_a_role_and_default_covers_the_others():
    caps = Caps.of({"per_fault": {"default": 1, "etcd": 0}})
    check_blast(caps, TOPOLOGY, "restart", ["a0"])
    with pytest.raises(SpecError, match=r"etcd: 1 of 3 node\(s\), cap 0"):
        check_blast(caps, TOPOLOGY, "restart", ["e0"])
    with pytest.raises(SpecError, match=r"agent: 2 of 4 node\(s\), cap 1"):
        check_blast(caps, TOPOLOGY, "restart", ["a0", "a1"])


def test_describe_says_each_roles_limits():
    assert describe(Caps.of(None), TOPOLOGY) == (
        "etcd 1 per fault (50%), 1 per run (50%) of 3; control-plane 1 per "
        "fault (50%), 1 per run (50%) of 1; agent 2 per fault (50%), 2 per "
        "run (50%) of 4")


def test_the_inventory_sets_them():
    inventory = parse_inventory({"cluster": "c", "blast_radius": {
        "per_fault": {"default": "25%", "agent": 3},
        "per_run": {"control-plane": "100%"}}}, "inv.yaml")
    caps = inventory.caps
    assert (str(caps.per_fault["etcd"]), str(caps.per_fault["agent"]),
            str(caps.per_run["control-plane"]), str(caps.per_run["agent"])
            ) == ("25%", "3", "100%", "50%")
    assert parse_inventory({"cluster": "c"}, "i").caps == Caps.of(None)
    with pytest.raises(SpecError, match=r"`blast_radius.per_fault.agent` "
                       r"must be a number of nodes .* not '150%'"):
        parse_inventory({"cluster": "c", "blast_radius": {
            "per_fault": {"agent": "150%"}}}, "inv.yaml")


# -- the whole experiment, before anything runs --------------------------
EXPERIMENTS = Path(__file__).parents[2] / "experiments"
ACCESS = Access(transport="ssh", host="10.0.0.1")
REACHABLE = Topology(tuple(replace(n, access=ACCESS)
                           for n in TOPOLOGY.nodes))


def _problems(name: str, caps: Caps, **variables) -> list[str]:
    experiment = json.loads((EXPERIMENTS / name).read_text())
    configuration = load_configuration(experiment["configuration"],
                                       variables)
    return check_blast_radius(experiment, configuration, {}, REACHABLE,
                              caps, lambda selector: [])


def test_the_headline_experiment_is_over_the_default_caps():
    """At-risk: e1 and e2 (two of three etcd members) and four of four
    agents, cut at once: a real cluster's inventory must allow it."""
    problems = _problems("etcd_only_partition.json", Caps.of(None))
    assert len(problems) == 1
    assert problems[0].startswith(
        "method activity 'cut-at-risk-nodes-from-control-plane': refused by "
        "the blast-radius caps: partition_roles (a0, a1, a2, a3, e1, e2)")
    assert "etcd: 2 of 3 node(s), cap 50% (1)" in problems[0]
    assert _problems("etcd_only_partition.json", Caps.of({
        "per_fault": {"default": "100%"},
        "per_run": {"default": "100%"}})) == []


def test_one_at_a_time_restarts_fit_in_one_node_per_role():
    caps = Caps.of({"per_fault": {"default": 1}, "per_run": {"default": 1}})
    assert _problems("node_restart.json", caps) == []
    none = Caps.of({"per_fault": {"default": 1, "agent": 0}})
    assert [p.split(":")[0] for p in _problems("node_restart.json", none)
            ] == ["method activity 'restart-agents'"]


def test_steps_left_open_count_for_the_next_ones():
    experiment = {"method": [
        {"type": "action", "name": "stop-one", "provider": {
            "type": "python", "module": "chaosk3s.actions",
            "func": "stop_k3s", "arguments": {"nodes": "agent[0]"}}},
        {"type": "action", "name": "stop-another", "provider": {
            "type": "python", "module": "chaosk3s.actions",
            "func": "stop_k3s", "arguments": {"nodes": "agent[1]"}}},
        {"type": "action", "name": "start-the-first", "provider": {
            "type": "python", "module": "chaosk3s.actions",
            "func": "start_k3s", "arguments": {"nodes": "agent[0]"}}},
        {"type": "action", "name": "stop-a-third", "provider": {
            "type": "python", "module": "chaosk3s.actions",
            "func": "stop_k3s", "arguments": {"nodes": "agent[2]"}}}]}
    caps = Caps.of({"per_run": {"agent": 2}})
    assert check_blast_radius(experiment, {}, {}, REACHABLE, caps,
                              lambda s: []) == []
    caps = Caps.of({"per_run": {"agent": 1}})
    problems = check_blast_radius(experiment, {}, {}, REACHABLE, caps,
                                  lambda s: [])
    assert [p.split(":")[0] for p in problems] == [
        "method activity 'stop-another'"]
    assert "open faults on a0: agent: 2 of 4" in problems[0]
