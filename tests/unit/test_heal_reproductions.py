"""The ways to break "a run never leaves damage behind" that issue 12
listed, each driven through the public functions (actions, the control's
heal, `chaosk3s cleanup`, `chaosk3s plan`).

The seams are the real ones: the emulated API server (real HTTP, real
etcd) and the recording transport, whose fake nodes answer the scripts
chaosk3s sends (tests/unit/fakecluster.py). A thread plays the kubelets:
it renews each running node's Lease, as K3s does.
"""

import json
import threading
import time
from dataclasses import dataclass

import pytest
import yaml
from click.testing import CliRunner
from kubernetes import client

from chaosk3s import actions, consent
from chaosk3s.cli import main
from chaosk3s.errors import ChaosK3sError, SpecError
from chaosk3s.kube import Kube
from chaosk3s.ledger import ledger_dir
from chaosk3s.plan import describe
from chaosk3s.run import current_run, end_run
from chaosk3s.safe_cleanup import heal_everything, heal_run
from chaosk3s.target import forget_targets, get_target
from tests.unit.conftest import write_kubeconfig
from tests.unit.fakecluster import COMMANDS, FakeCluster
from tests.unit.test_apiserver import kube as api_client
from tests.unit.test_apiserver import node_body

ROLES = {"server-etcd-0": ["etcd"], "server-etcd-1": ["etcd"],
         "server-etcd-2": ["etcd"], "server-cp-0": ["control-plane",
                                                     "master"],
         "agent-0": [], "agent-1": []}
ADDRESSES = {name: f"10.0.0.{10 + i}" for i, name in enumerate(ROLES)}


@dataclass
class World:
    cluster: FakeCluster
    config: dict
    api: object
    core: client.CoreV1Api
    stop_api: object
    paused: dict

    def node(self, name: str):
        return self.cluster.nodes[name]


class Kubelets(threading.Thread):
    """Renews the Lease of every running, reachable fake node."""

    def __init__(self, api, cluster: FakeCluster, paused: dict):
        super().__init__(daemon=True)
        self.coord = client.CoordinationV1Api(api_client(api))
        self.cluster, self.paused = cluster, paused
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            for name, node in self.cluster.nodes.items():
                if node.active and node.reachable and \
                        self.paused.get(name, 0) < time.monotonic():
                    self._renew(name)

    def _renew(self, name: str) -> None:
        try:
            lease = self.coord.read_namespaced_lease(name,
                                                     "kube-node-lease")
            lease.spec.renew_time = None
            lease.spec.renew_time = time.strftime(
                "%Y-%m-%dT%H:%M:%S.") + f"{time.time() % 1:.6f}"[2:] + "Z"
            self.coord.replace_namespaced_lease(name, "kube-node-lease",
                                                lease)
        except Exception:  # noqa: BLE001 - the API may be down: like K3s
            pass


def _register(api) -> client.CoreV1Api:
    core = client.CoreV1Api(api_client(api))
    coord = client.CoordinationV1Api(api_client(api))
    for name, roles in ROLES.items():
        body = node_body(name, {f"node-role.kubernetes.io/{r}": "true"
                                for r in roles})
        body["status"]["addresses"] = [
            {"type": "InternalIP", "address": ADDRESSES[name]}]
        body["metadata"]["annotations"] = {"k3s.io/node-args": json.dumps(
            ["server" if roles else "agent", "--server",
             "https://10.0.0.10:6443"])}
        core.create_node(body)
        coord.create_namespaced_lease("kube-node-lease", {
            "metadata": {"name": name}, "spec": {
                "holderIdentity": name, "leaseDurationSeconds": 40,
                "renewTime": "2024-11-12T00:00:00.000000Z"}})
    return core


def _inventory(tmp_path, url: str, commands: dict) -> str:
    """A cluster that consents to chaos and caps nothing (the quorum
    guard is what these tests are about)."""
    path = tmp_path / "inventory.yaml"
    kubeconfig = str(write_kubeconfig(tmp_path / "kubeconfig", url))
    granted = consent.grant(Kube(kubeconfig, [None]), "test")
    path.write_text(yaml.safe_dump({
        "cluster": "test", "cluster_uid": granted.uid,
        "kubeconfig": kubeconfig,
        "blast_radius": {"per_fault": {"default": "100%"},
                         "per_run": {"default": "100%"}},
        "commands": {"servers": commands, "agents": commands},
        "nodes": [{"name": n, "address": a, "transport": {
            "type": "ssh", "host": a}} for n, a in ADDRESSES.items()]}))
    return str(path)


@pytest.fixture
def world(api, loop_thread, tmp_path, monkeypatch, request):
    monkeypatch.setenv("CHAOSK3S_LEDGER_DIR", str(tmp_path / "ledger"))
    commands = getattr(request, "param", COMMANDS)
    core = _register(api)
    cluster = FakeCluster(list(ROLES), commands)
    config = {"target": _inventory(tmp_path, api.url, commands)}
    target = get_target(config)
    for name in ROLES:
        target._transports[name] = cluster.transport(name)
    paused: dict = {}
    kubelets = Kubelets(api, cluster, paused)
    kubelets.start()
    stopped = []

    def stop_api():
        kubelets.done.set()
        loop_thread.run(api.close(), timeout=30)
        stopped.append(True)

    yield World(cluster, config, api, core, stop_api, paused)
    kubelets.done.set()
    kubelets.join(5)
    forget_targets()
    end_run()


def chains(world, name: str) -> list[str]:
    return sorted(world.node(name).chains)


def open_entries() -> list[dict]:
    return [e for p in ledger_dir().glob("*.json")
            for e in json.loads(p.read_text())["faults"]
            if not e.get("ended_at")]


def test_with_the_api_down_and_no_roles_a_stopped_k3s_is_started(world):
    """Was: the API down with an inventory that lists no roles (as in
    the README example): nothing was sent, k3s stayed stopped."""
    actions.stop_k3s("name:agent-0", configuration=world.config)
    assert not world.node("agent-0").active
    world.stop_api()
    report = heal_run(current_run(world.config))
    assert report.ok and world.node("agent-0").active
    assert world.node("agent-0").timers == {}  # node-side start cancelled
    assert open_entries() == []


def test_cleanup_with_the_api_down_heals_every_run(world):
    actions.partition_roles("agent", "control-plane",
                            configuration=world.config)
    actions.stop_k3s("name:agent-1", configuration=world.config)
    end_run()  # the runner is gone; its ledger stays
    world.stop_api()
    report = heal_everything(world.config)
    assert report.ok, report.open
    assert chains(world, "agent-0") == chains(world, "agent-1") == []
    assert world.node("agent-1").active and open_entries() == []


def test_an_unreachable_node_does_not_keep_the_others_broken(world):
    """Was: a partition on an unreachable agent followed by a stop on
    server-cp-0: `systemctl start` never reached server-cp-0."""
    actions.partition_roles("agent", "control-plane",
                            configuration=world.config)
    actions.stop_k3s("name:server-cp-0", configuration=world.config)
    world.node("agent-1").reachable = False
    report = heal_run(current_run(world.config))
    assert world.node("server-cp-0").active
    assert chains(world, "agent-0") == []
    assert [(o["kind"], o["node"]) for o in report.open] == [
        ("partition", "agent-1")]
    (entry,) = open_entries()
    assert entry["open_nodes"] == ["agent-1"]
    assert "No route to host" in entry["errors"]["agent-1"]


@pytest.mark.parametrize("args", ["42", "null", '{"--server": "x"}'])
def test_a_malformed_annotation_breaks_no_heal_path(world, args):
    """Was: a malformed k3s.io/node-args annotation on any node made
    every heal path fail in topology parsing."""
    world.core.patch_node("agent-1", {"metadata": {"annotations": {
        "k3s.io/node-args": args}}})
    assert get_target(world.config).topology().problems
    actions.partition_roles("agent", "control-plane",
                            configuration=world.config)
    actions.stop_k3s("name:agent-1", configuration=world.config)
    report = heal_run(current_run(world.config))
    assert report.ok and world.node("agent-1").active
    assert heal_everything(world.config).ok


@pytest.mark.parametrize("world", [{
    **COMMANDS, "start": "systemctl start k3s # for ${HOSTNAME}"}],
    indirect=True)
def test_shell_variables_in_inventory_commands_reach_the_node(world):
    """Was: an inventory command containing ${HOSTNAME}: KeyError at
    cleanup."""
    actions.stop_k3s("name:agent-0", configuration=world.config)
    assert heal_run(current_run(world.config)).ok
    sent = [c.text for c in world.cluster.log if c.node == "agent-0"]
    assert "systemctl start k3s # for ${HOSTNAME}" in sent


def test_cleanup_with_one_unreachable_node_heals_the_rest(world):
    """Was: `chaosk3s cleanup` with one unreachable node healed nothing
    anywhere. Now: the rest healed, that node reported, exit code 1."""
    actions.partition_roles("agent", "control-plane",
                            configuration=world.config)
    end_run()
    world.node("agent-1").reachable = False
    result = CliRunner().invoke(main, ["cleanup", "--target",
                                       world.config["target"]])
    assert result.exit_code == 1, result.output
    assert "STILL OPEN" in result.output and "agent-1" in result.output
    assert "node agent-1 cannot be read" in result.output
    assert chains(world, "agent-0") == []
    world.node("agent-1").reachable = True
    again = CliRunner().invoke(main, ["cleanup", "--target",
                                      world.config["target"]])
    assert again.exit_code == 0 and "none remain" in again.output
    assert chains(world, "agent-1") == [] and open_entries() == []


def test_a_node_the_api_no_longer_lists_is_healed_not_skipped(world):
    """Was: a fault on a node the API no longer lists was skipped but
    recorded as healed."""
    actions.partition_roles("name:agent-1", "control-plane",
                            configuration=world.config)
    world.core.delete_node("agent-1")
    world.node("agent-1").reachable = False
    report = heal_run(current_run(world.config))
    assert [o["node"] for o in report.open] == ["agent-1"]
    assert open_entries()  # not recorded as healed
    world.node("agent-1").reachable = True
    assert heal_run(current_run(world.config)).ok
    assert chains(world, "agent-1") == [] and open_entries() == []


def test_every_stop_arms_a_node_side_start(world):
    """Was: stop_k3s had no expiry on the node by default."""
    actions.stop_k3s("name:agent-0", configuration=world.config)
    actions.stop_k3s("name:agent-1", configuration={**world.config,
                                                    "fault_ttl": 45})
    armed = {c.node: c.text for c in world.cluster.log
             if "echo armed" in c.text}
    assert "sleep 300" in armed["agent-0"] and "sleep 45" in armed[
        "agent-1"]
    assert len(world.node("agent-0").timers) == 1
    heal_run(current_run(world.config))
    assert world.node("agent-0").timers == {}


def test_a_second_etcd_stop_in_one_run_is_refused(world):
    """Was: stopping etcd-0 and then etcd-1 in one run was allowed."""
    actions.stop_k3s("name:server-etcd-0", configuration=world.config)
    with pytest.raises(SpecError, match="without quorum") as refused:
        actions.stop_k3s("name:server-etcd-1", configuration=world.config)
    assert "server-etcd-0" in str(refused.value)  # it says why
    assert world.node("server-etcd-1").active
    assert COMMANDS["stop"] not in [c.text for c in world.cluster.log
                                    if c.node == "server-etcd-1"]


def test_two_partitions_that_isolate_every_member_are_refused(world):
    """Was: two partitions that together isolated every etcd member were
    allowed."""
    actions.partition_roles("name:server-etcd-0", "etcd",
                            configuration=world.config)
    with pytest.raises(SpecError, match="without quorum"):
        actions.partition_roles("name:server-etcd-1", "name:server-etcd-2",
                                configuration=world.config)
    assert chains(world, "server-etcd-1") == []


def test_other_runs_faults_read_from_the_nodes_count(world):
    actions.partition_roles("name:server-etcd-0", "etcd",
                            configuration=world.config)
    end_run()  # another run from now on; the first one's chains stay
    with pytest.raises(SpecError, match="read on server-etcd-0"):
        actions.partition_roles("name:server-etcd-1", "name:server-etcd-2",
                                configuration=world.config)


def test_restarting_every_member_at_once_is_refused(world):
    """Was: restart_k3s and reboot_nodes skipped the check."""
    with pytest.raises(SpecError, match="at once would leave etcd"):
        actions.restart_k3s("etcd", one_at_a_time=False,
                            configuration=world.config)
    assert world.cluster.sent("restart") == []


def test_reboot_one_at_a_time_waits_for_each_member_to_be_back(world):
    """Was: reboot_nodes("etcd") sent reboot to all three at once, with
    no wait for a member to rejoin before the next."""
    resumed = {}

    def slow_kubelet(name):
        world.paused[name] = time.monotonic() + 1.0
        resumed[name] = world.paused[name]
    for name in ("server-etcd-0", "server-etcd-1"):
        world.node(name).on_boot.append(slow_kubelet)
    done = actions.reboot_nodes("etcd", timeout=10,
                                configuration=world.config)
    assert [n["node"] for n in done["nodes"]] == [
        "server-etcd-0", "server-etcd-1", "server-etcd-2"]
    issued = {c.node: c.at for c in world.cluster.log
              if "setsid nohup /bin/sh -c" in c.text}
    assert issued["server-etcd-1"] >= resumed["server-etcd-0"]
    assert issued["server-etcd-2"] >= resumed["server-etcd-1"]
    assert all(n["back"]["seconds"] >= 0 for n in done["nodes"])


def test_the_runner_seen_over_ipv6_and_dual_stack_peers(world):
    """Was: IPv6 addresses were refused mid-apply, after some nodes were
    already cut, with no undo; no ip6tables rules were written."""
    cp = world.core.read_node("server-cp-0")
    cp.status.addresses = [
        client.V1NodeAddress(type="InternalIP", address="10.0.0.13"),
        client.V1NodeAddress(type="InternalIP", address="fd00::13")]
    world.core.replace_node_status("server-cp-0", cp)
    world.cluster.who = "fd00::1 40000 fd00::20 22"
    actions.partition_roles("agent", "control-plane",
                            configuration=world.config)
    (rules,) = [c.text for c in world.cluster.log
                if c.node == "agent-0" and "echo applied" in c.text]
    assert "ip6tables-restore -w 5 --noflush" in rules
    assert "-d fd00::13/128" in rules and "-d 10.0.0.13/32" in rules
    assert "-s fd00::1/128 -p tcp -m tcp --dport 22" in rules
    assert heal_run(current_run(world.config)).ok


def test_a_node_whose_rules_cannot_be_built_stops_the_plan_first(world):
    world.node("agent-1").who = "not-an-address 1 2 3"
    with pytest.raises(ChaosK3sError, match="runner's address"):
        actions.partition_roles("agent", "control-plane",
                                configuration=world.config)
    assert world.cluster.sent("apply") == []
    assert open_entries() == []


def test_plan_shows_what_the_guard_would_refuse(world, tmp_path):
    experiment = tmp_path / "two-stops.json"
    step = {"type": "action", "provider": {
        "type": "python", "module": "chaosk3s.actions", "func": "stop_k3s"}}
    experiment.write_text(json.dumps({
        "title": "two stops", "description": "x",
        "configuration": {"target": world.config["target"]},
        "method": [
            {**step, "name": "stop-0", "provider": {
                **step["provider"],
                "arguments": {"nodes": "name:server-etcd-0"}}},
            {**step, "name": "stop-1", "provider": {
                **step["provider"],
                "arguments": {"nodes": "name:server-etcd-1"}}}]}))
    text = describe(str(experiment), {})
    first, second = text.split("[2]")
    assert "REFUSED" not in first
    assert "REFUSED by the quorum guard" in second
    assert "server-etcd-0 (step 1)" in second
    assert world.cluster.sent("stop") == []  # a plan changes nothing


def test_cleanup_finds_on_the_nodes_what_no_ledger_knows(world):
    """A ledger lost (or set aside as unreadable): `chaosk3s cleanup`
    still finds chaosk3s's chains and node-side starts by reading the
    nodes, and heals them."""
    actions.partition_roles("agent", "control-plane",
                            configuration=world.config)
    actions.stop_k3s("name:agent-1", configuration=world.config)
    end_run()
    for path in ledger_dir().glob("*.json"):
        path.write_text("{ torn")  # unreadable: set aside, not trusted
    result = CliRunner().invoke(main, ["cleanup", "--target",
                                       world.config["target"]])
    assert result.exit_code == 1, result.output  # the ledger is reported
    assert "cannot be read" in result.output
    assert "removed CHAOSK3S-" in result.output
    assert "started k3s on agent-1" in result.output
    assert chains(world, "agent-0") == chains(world, "agent-1") == []
    assert world.node("agent-1").active
    assert world.node("agent-1").timers == {}
    assert list(ledger_dir().glob("*.unreadable-*.json"))
    again = CliRunner().invoke(main, ["cleanup", "--target",
                                      world.config["target"]])
    assert again.exit_code == 0 and "none remain" in again.output


def test_plan_runs_label_selected_partitions_through_the_guard(world,
                                                               tmp_path):
    """Was: `chaosk3s plan` simulated the guard for partition_roles only;
    a partition_nodes that isolates etcd members went unmentioned."""
    experiment = tmp_path / "two-cuts.json"
    step = {"type": "action", "provider": {
        "type": "python", "module": "chaosk3s.actions",
        "func": "partition_nodes"}}
    for i in (0, 1):
        world.core.patch_node(f"server-etcd-{i}", {"metadata": {
            "labels": {"cut": f"c{i}"}}})
    cut = "cut=c{}"
    experiment.write_text(json.dumps({
        "title": "two cuts", "description": "x",
        "configuration": {"target": world.config["target"]},
        "method": [{**step, "name": f"cut-{i}", "provider": {
            **step["provider"], "arguments": {
                "selector": cut.format(i),
                "peer_selector": "node-role.kubernetes.io/etcd=true"}}}
            for i in (0, 1)]}))
    text = describe(str(experiment), {})
    first, second = text.split("[2]")
    assert "REFUSED" not in first and "CHAOSK3S-" in first
    assert "REFUSED by the quorum guard" in second
    assert world.cluster.sent("apply") == []  # a plan changes nothing
