"""What every fault action checks before it applies anything, through
the public actions on the fake cluster (emulated API server, recording
transport): the cluster's consent, and the blast-radius caps with this
run's open faults, in the ledger's lock like the quorum guard."""

import json
from pathlib import Path

import pytest
import yaml

from chaosk3s import actions, consent
from chaosk3s.errors import NotConsented, Refused, SpecError
from chaosk3s.kube import Kube
from chaosk3s.plan import describe
from chaosk3s.run import current_run
from chaosk3s.target import get_target
from tests.unit import test_heal_reproductions as heal_tests
from tests.unit.test_heal_reproductions import ROLES, open_entries

world = heal_tests.world  # the fake cluster, consenting, caps at 100%


def _inventory(world, tmp_path: Path, **changes) -> dict:
    """The world's inventory with changes, reaching the same fake nodes."""
    raw = yaml.safe_load(Path(world.config["target"]).read_text())
    raw.update(changes)
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = {"target": str(path)}
    target = get_target(config)
    for name in ROLES:
        target._transports[name] = world.cluster.transport(name)
    return config


def test_the_per_run_cap_counts_this_runs_open_faults(world, tmp_path):
    config = _inventory(world, tmp_path, blast_radius={
        "per_fault": {"default": "100%"}, "per_run": {"agent": 1}})
    actions.stop_k3s("name:agent-0", configuration=config)
    with pytest.raises(SpecError, match=r"refused by the blast-radius "
                       r"caps: stop of agent-1 at once \(agent-1\) exceeds "
                       r"per run, with this run's open faults on agent-0: "
                       r"agent: 2 of 2 node\(s\), cap 1 \(1\)"):
        actions.stop_k3s("name:agent-1", force=True, configuration=config)
    assert world.node("agent-1").active  # nothing was sent to it
    assert "stop" not in [k for n, k in world.cluster.kinds()
                          if n == "agent-1"]
    assert [e["nodes"] for e in open_entries()] == [["agent-0"]]
    actions.start_k3s("name:agent-0", configuration=config)
    actions.stop_k3s("name:agent-1", configuration=config)  # room again
    assert not world.node("agent-1").active


def test_the_per_fault_cap_refuses_before_the_first_node(world, tmp_path):
    config = _inventory(world, tmp_path, blast_radius={
        "per_fault": {"agent": 1}})
    with pytest.raises(SpecError, match=r"per fault: agent: 2 of 2"):
        actions.partition_roles("agent", "control-plane",
                                configuration=config)
    with pytest.raises(SpecError, match=r"per fault: agent: 2 of 2"):
        actions.restart_k3s("agent", one_at_a_time=False,
                            configuration=config)
    assert world.cluster.sent("apply") == [] and open_entries() == []
    assert all(world.node(n).active for n in ROLES)
    actions.restart_k3s("agent", configuration=config)  # one at a time


def test_no_consent_no_fault_but_healing_needs_none(world, tmp_path):
    actions.stop_k3s("name:agent-0", configuration=world.config)
    kube = Kube(yaml.safe_load(Path(world.config["target"]).read_text())[
        "kubeconfig"], [None])
    consent.withdraw(kube)
    get_target(world.config)._consent = None  # as a new run reads it
    with pytest.raises(NotConsented, match="has not consented"):
        actions.partition_roles("agent", "control-plane",
                                configuration=world.config)
    with pytest.raises(NotConsented, match="has not consented"):
        actions.restart_k3s("name:agent-1", configuration=world.config)
    assert world.cluster.sent("apply") == []
    actions.start_k3s("name:agent-0", configuration=world.config)
    assert world.node("agent-0").active
    assert current_run(world.config).session.heal().ok


def _two_stops(tmp_path: Path, target: str) -> Path:
    experiment = tmp_path / "two-stops.json"
    step = {"type": "action", "provider": {
        "type": "python", "module": "chaosk3s.actions", "func": "stop_k3s"}}
    experiment.write_text(json.dumps({
        "title": "two stops", "description": "x",
        "configuration": {"target": target},
        "method": [{**step, "name": f"stop-{n}", "provider": {
            **step["provider"], "arguments": {"nodes": f"name:agent-{n}"}}}
            for n in (0, 1)]}))
    return experiment


def test_plan_prints_the_caps_and_refuses_what_the_run_would(world,
                                                             tmp_path):
    text = describe(str(_two_stops(tmp_path, world.config["target"])), {})
    assert "blast radius: etcd 3 per fault (100%), 3 per run (100%) of 3;" \
        in text
    capped = _inventory(world, tmp_path, blast_radius={
        "per_run": {"agent": 1}})["target"]
    with pytest.raises(Refused) as refused:
        describe(str(_two_stops(tmp_path, capped)), {})
    assert str(refused.value).startswith(
        "method activity 'stop-1': refused by the blast-radius caps: "
        "stop_k3s (agent-1) exceeds per run, with this run's open faults "
        "on agent-0: agent: 2 of 2 node(s), cap 1 (1)")
    assert world.cluster.sent("stop") == []  # a plan changes nothing
