"""The extension against the lab: faults never outlive their run, bad
input changes nothing, real clients see what the probes see."""

import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from chaosk3s import actions, probes
from chaosk3s.errors import ChaosK3sError, SpecError
from tests.lab.conftest import netns_exec
from tests.lab.k3s_helpers import wait_for

pytestmark = pytest.mark.lab

CONFIG = {"target": "lab"}



def chaosk3s_rules(lab) -> dict[str, str]:
    """Every node's iptables lines that mention CHAOSK3S."""
    found = {}
    for node in lab.spec().nodes:
        rules = netns_exec(node.name, "iptables", "-S").stdout
        mine = [r for r in rules.splitlines() if "CHAOSK3S" in r]
        if mine:
            found[node.name] = "\n".join(mine)
    return found


def all_rules(lab) -> dict[str, list[str]]:
    """Every rule of every table on every node (no dates or counters)."""
    return {n.name: [re.sub(r"\[\d+:\d+\]", "", line) for line in
                     netns_exec(n.name, "iptables-save").stdout.splitlines()
                     if not line.startswith("#")]
            for n in lab.spec().nodes}


def write_experiment(tmp_path: Path, title: str, **parts) -> Path:
    """An experiment on the lab under the chaosk3s control."""
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps({
        "title": title, "description": "test",
        "configuration": {"target": "lab"},
        "controls": [{"name": "chaosk3s", "provider": {
            "type": "python", "module": "chaosk3s.control"}}], **parts}))
    return path


def _experiment(tmp_path: Path, hold: float, ttl: float) -> Path:
    return write_experiment(
        tmp_path, "hold a partition",
        runtime={"rollbacks": {"strategy": "always"}},
        method=[
            {"type": "action", "name": "cut", "provider": {
                "type": "python", "module": "chaosk3s.actions",
                "func": "partition_roles", "arguments": {
                    "group": "agent", "peers": "control-plane",
                    "ttl": ttl}}},
            {"type": "probe", "name": "hold", "provider": {
                "type": "python", "module": "chaosk3s.probes",
                "func": "nodes_not_ready_within",
                "arguments": {"seconds": hold}}}],
        rollbacks=[{"type": "action", "name": "heal", "provider": {
            "type": "python", "module": "chaosk3s.actions",
            "func": "heal_partitions"}}])


def _start_run(tmp_path: Path, hold: float, ttl: float
               ) -> subprocess.Popen:
    chaos = Path(sys.executable).parent / "chaos"
    return subprocess.Popen([str(chaos), "run", str(_experiment(
        tmp_path, hold, ttl))], cwd=tmp_path, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def _journal_so_far_runs(tmp_path: Path) -> list:
    try:
        return json.loads((tmp_path / "journal.json").read_text())["run"]
    except (OSError, ValueError, KeyError):  # not written yet, or mid-write
        return []


def test_kill_9_during_partition_expires_on_the_nodes(lab, tmp_path):
    # The hold stays under the ttl (a longer one is refused before the
    # run, chaosk3s.holds); the runner dies well inside it, so only the
    # nodes' own timers can remove the rules.
    run = _start_run(tmp_path, hold=7, ttl=8)
    try:
        wait_for(lambda: chaosk3s_rules(lab), 30, "the partition applied")
        applied = time.monotonic()
        # Killed in the hold: once the cut is in the journal-so-far.
        wait_for(lambda: _journal_so_far_runs(tmp_path), 5,
                 "the cut recorded in the journal so far")
        run.send_signal(signal.SIGKILL)
        run.wait(10)
        assert time.monotonic() - applied < 7, "killed after the hold"
        wait_for(lambda: not chaosk3s_rules(lab), 15,
                 "the rules expiring on the nodes")
        assert time.monotonic() - applied < 8 + 5
    finally:
        run.kill()
    partial = json.loads((tmp_path / "journal.json").read_text())
    assert "status" not in partial and partial["run"]  # journal-so-far
    assert partial["chaosk3s"]["faults"][0]["kind"] == "partition"
    wait_for(lambda: probes.all_nodes_ready(configuration=CONFIG), 30,
             "every node Ready after the expiry")
    from tests.conftest import run_cli
    cleanup = run_cli("cleanup")
    assert cleanup.returncode == 0, cleanup.stderr
    assert "none remain" in cleanup.stdout
    assert chaosk3s_rules(lab) == {}


def test_faults_lists_and_heals_what_a_killed_run_left(lab, tmp_path):
    """`chaosk3s faults --json` shows a dead run's partition from its
    ledger and from the nodes' iptables; `--cleanup` heals it; `lab
    status --json` and `cleanup --json` are JSON too."""
    from tests.conftest import run_cli
    status = json.loads(run_cli("lab", "status", "--json").stdout)
    assert {n["name"] for n in status["nodes"]} == {
        n.name for n in lab.spec().nodes}
    assert status["etcd"]["quorum"] is True
    run = _start_run(tmp_path, hold=120, ttl=300)
    try:
        wait_for(lambda: chaosk3s_rules(lab), 30, "the partition applied")
        run.send_signal(signal.SIGKILL)
        run.wait(10)
    finally:
        run.kill()
    cut = set(chaosk3s_rules(lab))
    listed = run_cli("faults", "--json")
    assert listed.returncode == 0, listed.stderr
    active = json.loads(listed.stdout)["active"]
    [recorded] = active["recorded"]
    assert recorded["kind"] == "partition" and active["problems"] == []
    assert {f["node"] for f in active["on_nodes"]} == cut
    # each chain carries the id of the fault the ledger recorded
    assert {f["run_id"] for f in active["on_nodes"]} == {
        recorded["fault_id"]}
    assert "1 recorded fault(s) open" in run_cli("faults").stdout

    healed = run_cli("faults", "--cleanup", "--json")
    assert healed.returncode == 0, healed.stderr
    result = json.loads(healed.stdout)
    assert result["cleanup"]["ok"] and result["cleanup"]["healed"]
    assert result["after"]["recorded"] == result["after"]["on_nodes"] == []
    assert chaosk3s_rules(lab) == {}
    again = json.loads(run_cli("cleanup", "--json").stdout)
    assert again == {"ok": True, "healed": [], "swept": [], "open": []}
    wait_for(lambda: probes.all_nodes_ready(configuration=CONFIG), 60,
             "every node Ready after the cleanup")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_heals_before_exit(lab, tmp_path, sig):
    run = _start_run(tmp_path, hold=120, ttl=300)
    try:
        wait_for(lambda: chaosk3s_rules(lab), 30, "the partition applied")
        run.send_signal(sig)
        run.wait(60)
    finally:
        run.kill()
    assert chaosk3s_rules(lab) == {}  # healed before the process ended
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["status"] == "interrupted"
    fault = journal["chaosk3s"]["faults"][0]
    assert fault["ended_at"], fault


@pytest.mark.parametrize("call,message", [
    (lambda: actions.partition_roles("name:nobody", "control-plane",
                                     configuration=CONFIG),
     "matches no node"),
    (lambda: actions.partition_roles("workers", "control-plane",
                                     configuration=CONFIG),
     "unknown node group 'workers'"),
    (lambda: actions.partition_roles("etcd", "etcd", configuration=CONFIG),
     "without quorum"),
    (lambda: actions.stop_k3s("etcd", configuration=CONFIG),
     "without quorum"),
    (lambda: actions.partition_roles("agent", "control-plane",
                                     direction="sideways",
                                     configuration=CONFIG),
     "direction"),
])
def test_bad_requests_change_nothing(lab, call, message):
    before = all_rules(lab)
    with pytest.raises(ChaosK3sError, match=message):
        call()
    assert all_rules(lab) == before
    assert probes.active_faults(configuration=CONFIG) == []


def test_unreachable_node_in_inventory_changes_nothing(lab, tmp_path):
    inventory = tmp_path / "inventory.yaml"
    # agent-1 claims to be reachable over SSH at an address nobody has.
    raw = yaml.safe_load(lab.state.inventory.read_text())
    for node in raw["nodes"]:
        if node["name"] == "agent-1":
            node["transport"] = {"type": "ssh", "host": str(
                ipaddress.IPv4Network(lab.spec().subnet)[250]),
                                 "options": {"ConnectTimeout": "2"}}
    inventory.write_text(yaml.safe_dump(raw))
    before = all_rules(lab)
    started = time.monotonic()
    with pytest.raises(ChaosK3sError, match="agent-1"):
        actions.partition_roles("agent", "control-plane",
                                configuration={"target": str(inventory)})
    assert time.monotonic() - started < 20
    assert all_rules(lab) == before


def test_partition_heal_and_probes_on_the_lab(lab):
    config = CONFIG
    assert probes.at_risk_nodes(config) == [
        "agent-0", "agent-1", "server-etcd-1", "server-etcd-2"]
    assert probes.nodes_pinned_to_etcd_only(config) == []
    assert probes.etcd_quorum_healthy(config) is True
    cp = lab.spec().node("server-cp-0").address
    done = actions.partition_roles("name:agent-0", "control-plane",
                                   mode="reject", ttl=120,
                                   configuration=config)
    try:
        assert done["nodes"] == ["agent-0"]
        assert done["peers"] == ["server-cp-0"]
        active = probes.active_faults(config)
        assert [f["node"] for f in active] == ["agent-0"]
        refused = netns_exec("agent-0", sys.executable, "-c",
                             "import socket; s=socket.socket(); "
                             "s.settimeout(3); "
                             f"print(s.connect_ex(('{cp}', 6443)))")
        assert refused.stdout.strip() == "111"  # ECONNREFUSED, at once
    finally:
        actions.heal_partitions(configuration=config)
    assert probes.active_faults(config) == []
    result = probes.wait_for_nodes_ready(30, "all", configuration=config)
    assert result["all_ready"], result
    wait_for(lambda: probes.nodes_pinned_to_etcd_only(config) == [], 20,
             "no node pinned to the etcd-only server (fixed release)")


def test_degrade_links_heal_and_probes_on_the_lab(lab):
    spec = lab.spec()
    cp = spec.node("server-cp-0").address
    done = actions.degrade_links("name:agent-0", "control-plane",
                                 rate="2mbit", direction="to", ttl=120,
                                 configuration=CONFIG)
    try:
        assert done["nodes"] == ["agent-0"] and done["peers"] == [
            "server-cp-0"]
        (fault,) = probes.active_faults(CONFIG)
        assert fault["kind"] == "degradation" and fault["node"] == "agent-0"
        assert [(x["peer"], x["peer_address"], x["device"], x["steered"],
                 x["rate"]) for x in fault["links"]] == [
            ("server-cp-0", cp, "eth0", True, "2Mbit")]
        shown = netns_exec("agent-0", "tc", "filter", "show", "dev",
                           "eth0").stdout
        hexed = "".join(f"{int(p):02x}" for p in cp.split("."))
        assert f"match {hexed}/ffffffff at 16" in shown, shown
        assert probes.all_nodes_ready(configuration=CONFIG) is True
    finally:
        healed = actions.heal_partitions(configuration=CONFIG)
    assert done["fault_id"] in healed["healed"]
    assert probes.active_faults(CONFIG) == []
    qdisc = netns_exec("agent-0", "tc", "qdisc", "show", "dev",
                       "eth0").stdout
    assert " htb " not in qdisc and "netem" not in qdisc, qdisc


def test_ready_flaps_counts_the_outage_a_partition_causes(lab):
    import threading
    got: dict = {}
    watcher = threading.Thread(target=lambda: got.update(
        probes.ready_flaps(45, "agent", configuration=CONFIG)))
    watcher.start()
    time.sleep(1)
    actions.partition_roles("name:agent-0", "control-plane",
                            mode="reject", ttl=60, configuration=CONFIG)
    try:
        wait_for(lambda: "agent-0" in probes.nodes_not_ready(
            "agent", configuration=CONFIG), 30, "agent-0 NotReady")
    finally:
        actions.heal_partitions(configuration=CONFIG)
    watcher.join(60)
    print(f"\nready_flaps: {got}")
    assert got["nodes"]["agent-0"]["flaps"] == 1
    assert got["nodes"]["agent-0"]["not_ready_at_end"] is False
    assert 0 < got["nodes"]["agent-0"]["longest_not_ready_seconds"] < 40
    assert got["nodes"]["agent-1"] == {"flaps": 0,
                                       "longest_not_ready_seconds": 0.0,
                                       "not_ready_at_end": False}


def test_api_latency_through_each_agents_own_load_balancer(lab):
    healthy = probes.api_latency("agent", 3, configuration=CONFIG)
    print(f"\napi_latency healthy: {healthy}")
    assert set(healthy["nodes"]) == {"agent-0", "agent-1"}
    assert healthy["failed"] == 0 and 0 < healthy["max_median_seconds"] < 1
    # agent-0 cut from every server: its load balancer has nowhere to go
    actions.partition_roles("name:agent-0", "all,-agent", mode="reject",
                            ttl=60, configuration=CONFIG)
    try:
        cut = probes.api_latency("agent", 2, configuration=CONFIG)
    finally:
        actions.heal_partitions(configuration=CONFIG)
    print(f"api_latency with agent-0 cut off: {cut}")
    assert cut["nodes"]["agent-0"]["failed"] == 2
    assert cut["nodes"]["agent-1"]["failed"] == 0


def test_real_clients_agree_with_the_probes(lab):
    env = {**os.environ, "KUBECONFIG": str(lab.state.kubeconfig)}
    kubectl = Path(sys.executable).parent / "kubectl"
    out = subprocess.run([str(kubectl), "get", "nodes", "-o", "wide"],
                         capture_output=True, text=True, env=env,
                         check=True, timeout=30).stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["server-cp-0"][1] == "Ready"
    assert rows["server-cp-0"][2] == "control-plane,master"
    assert rows["server-etcd-1"][2] == "etcd"
    assert rows["agent-0"][2] == "<none>"
    code = ("from chaosk8s.node.probes import "
            "all_nodes_must_be_ready_to_schedule as p; print(p())")
    chaosk8s = subprocess.run([sys.executable, "-c", code], env=env,
                              capture_output=True, text=True, timeout=60,
                              check=True).stdout.strip()
    assert chaosk8s == "True" and probes.all_nodes_ready(
        configuration=CONFIG) is True


def test_bad_target_is_a_clear_error(lab, tmp_path):
    with pytest.raises(SpecError, match="cannot read inventory"):
        probes.all_nodes_ready(configuration={"target": str(
            tmp_path / "missing.yaml")})


def test_plan_prints_rules_and_changes_nothing(lab):
    from tests.conftest import run_cli
    before = all_rules(lab)
    result = run_cli("plan", str(Path(__file__).resolve().parents[2] /
                                 "experiments" / "etcd_only_partition.json"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    cp = lab.spec().node("server-cp-0").address
    for node in ("agent-0", "agent-1", "server-etcd-1", "server-etcd-2"):
        assert f"== {node} (chain CHAOSK3S-" in out
    assert f"-d {cp}/32" in out and "server-etcd-0 (chain" not in out
    assert all_rules(lab) == before
    refused = run_cli("plan", "--var", "partition_seconds", str(
        Path(__file__).resolve().parents[2] / "experiments" /
        "etcd_only_partition.json"))
    assert refused.returncode != 0
    assert "Invalid value for '--var'" in refused.stderr


def test_plan_shows_a_flapping_degradation_and_changes_nothing(lab,
                                                               tmp_path):
    from tests.conftest import run_cli
    step = {"type": "action", "name": "slow-edge", "provider": {
        "type": "python", "module": "chaosk3s.actions",
        "func": "degrade_links", "arguments": {
            "group": "name:agent-0", "peers": "control-plane",
            "delay_ms": "${delay}", "loss": 5, "direction": "to",
            "ttl": 60, "flap_period": 4, "flap_count": 3}}}
    path = write_experiment(tmp_path, "slow edge", method=[step],
                            configuration={"target": "lab",
                                           "delay": 300})
    before = all_rules(lab)
    out = run_cli("plan", str(path))
    assert out.returncode == 0, out.stderr
    cp = lab.spec().node("server-cp-0").address
    assert "1 degraded link(s) on 1 node(s)" in out.stdout
    assert "flapping on each node: on 2s of every 4s, 3 time(s)" in \
        out.stdout
    assert "netem delay 300000us loss 5%" in out.stdout
    assert f"match ip dst {cp}/32 flowid" in out.stdout
    bad = run_cli("plan", "--var", "delay=-3", str(path))
    said = bad.stderr + bad.stdout
    assert bad.returncode != 0 and "argument delay_ms=" in said and \
        "expected milliseconds from 0 to 60000" in said, said
    assert all_rules(lab) == before
    qdisc = netns_exec("agent-0", "tc", "qdisc", "show").stdout
    assert "htb" not in qdisc and "netem" not in qdisc


def _chaos_run(tmp_path: Path, experiment: Path, *variables: str
               ) -> tuple[subprocess.CompletedProcess, dict]:
    chaos = Path(sys.executable).parent / "chaos"
    argv = [str(chaos), "run"]
    for variable in variables:
        argv += ["--var", variable]
    result = subprocess.run([*argv, str(experiment)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=180,
                            check=False, env=os.environ.copy())
    return result, json.loads((tmp_path / "journal.json").read_text())


EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
VERSION = "lab_k3s_version={running}"  # the release of the lab that is up


def lab_pids(lab) -> dict:
    """Every service's pid: a stop, start or restart would change one."""
    from chaosk3s.lab import procs
    return {(node.name, service.name): procs.pid_of(service)
            for node in lab.spec().nodes
            for service in lab.node_services(node.name, None)}


@pytest.mark.parametrize("experiment,variables,says", [
    # Refused before the lab is even looked at ...
    ("etcd_only_partition.json", ["partition_seconds=abc"],
     "argument seconds='abc' is invalid"),
    ("etcd_only_partition.json", ["partition_second=60"],
     "did you mean partition_seconds?"),
    ("etcd_only_partition.json", ["partition_mode=sideways"],
     "argument mode='sideways' is invalid: expected one of: drop, reject"),
    # ... or once the cluster is known: a selector matching no node.
    ("join_server_outage.json", ["join_server=control-plane[3]", VERSION],
     "'control-plane' has 1 node(s) (server-cp-0)"),
    # A lab of other nodes than lab_spec's is up: not reused.
    ("control_plane_outage.json", [VERSION], "a lab of other nodes is up"),
])
def test_a_refused_run_changes_nothing_on_any_node(lab, tmp_path,
                                                   experiment, variables,
                                                   says):
    """The nodes' rules and the K3s processes are as they were: the
    refusal came before the steady state, and the rollbacks (strategy
    always) did not run either."""
    before, pids = all_rules(lab), lab_pids(lab)
    running = lab.spec().release.version
    result, journal = _chaos_run(tmp_path, EXPERIMENTS / experiment, *(
        v.format(running=running) for v in variables))
    assert result.returncode == 1
    assert says in journal["chaosk3s"]["refused"], journal["chaosk3s"]
    assert journal["run"] == [] and not journal.get("rollbacks")
    assert journal["steady_states"]["before"] is None
    assert all_rules(lab) == before
    assert lab_pids(lab) == pids and None not in pids.values()
    assert probes.all_nodes_ready(configuration=CONFIG)


def test_a_method_activity_that_raises_fails_the_run(lab, tmp_path):
    """Chaos Toolkit would end this run "completed", exit 0: the steady
    state holds because the stop never happened (it would break etcd
    quorum, so the action refuses at run time)."""
    path = write_experiment(tmp_path, "a method action that raises", **{
        "steady-state-hypothesis": {"title": "ready", "probes": [
            {"type": "probe", "name": "all-ready", "tolerance": True,
             "provider": {"type": "python", "module": "chaosk3s.probes",
                          "func": "all_nodes_ready"}}]},
        "method": [{"type": "action", "name": "stop-every-etcd-server",
                    "provider": {"type": "python",
                                 "module": "chaosk3s.actions",
                                 "func": "stop_k3s",
                                 "arguments": {"nodes": "etcd"}}}]})
    result, journal = _chaos_run(tmp_path, path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert journal["status"] == "failed" and not journal["deviated"]
    assert journal["steady_states"]["after"]["steady_state_met"] is True
    [failed] = journal["chaosk3s"]["failed_activities"]
    assert failed["name"] == "stop-every-etcd-server"
    assert failed["phase"] == "method" and "quorum" in failed["error"]
    from chaosk3s.report import load_journal
    verdict = load_journal(tmp_path / "journal.json").verdict
    assert verdict.kind == "failed"
    assert "'stop-every-etcd-server' raised" in verdict.reason
