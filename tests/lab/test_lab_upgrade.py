"""Upgrading lab nodes in place, and the upgrade_k3s action on the lab.

Everything is seen from outside: the Node object's kubeletVersion through
the API (the kubernetes client), the node's k3s process and log, its boot
id, the lab's own `lab node`/`lab status` commands, the run's ledger.
One small lab (an etcd-only server, a control-plane server, two agents,
all joined through the etcd-only server) starts on an affected release.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaosk3s import actions
from chaosk3s.errors import ChaosK3sError, EffectNotSeen
from chaosk3s.lab import procs
from chaosk3s.lab.cluster import Lab
from chaosk3s.lab.spec import parse_spec
from chaosk3s.run import current_run
from tests.lab.conftest import private_lab
from tests.lab.k3s_helpers import api, wait_for

pytestmark = pytest.mark.lab
AFFECTED, FIXED, NEXT = "v1.28.15+k3s1", "v1.28.15+k3s-2d0661e3", \
    "v1.29.11+k3s1"
CONFIG = {"target": "lab"}
SPEC = {"k3s_version": AFFECTED, "nodes": [
    {"name": "kv-1", "role": "etcd"},
    {"name": "api-1", "role": "control-plane", "server": "kv-1"},
    {"name": "node-a", "role": "agent", "server": "kv-1"},
    {"name": "node-b", "role": "agent", "server": "kv-1"}]}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The lab at the state dir its name resolves to (a parallel
    worker's lab is named), so `chaosk3s lab` subprocesses find it."""
    with private_lab(tmp_path_factory.mktemp("upgrade"),
                     parse_spec(SPEC)) as lab:
        yield lab


def versions(lab: Lab) -> dict[str, str]:
    """Each Node's kubeletVersion, as the API has it."""
    return {n.metadata.name: n.status.node_info.kubelet_version
            for n in api(lab.state).list_node().items}


def k3s_pid(lab: Lab, node: str) -> int | None:
    return procs.pid_of(next(s for s in lab.node_services(node, None)
                             if s.name == "k3s"))


def lab_cli(*argv: str) -> subprocess.CompletedProcess:
    chaosk3s = Path(sys.executable).parent / "chaosk3s"
    return subprocess.run([str(chaosk3s), "lab", *argv], text=True,
                          capture_output=True, timeout=60, check=False)


@pytest.mark.parametrize("version,says", [
    ("v1.28.99+k3s1", "unknown K3s release 'v1.28.99+k3s1'"),
    ("latest", "unknown K3s release 'latest'"),
    ("v1.28.15+k3s-deadbeef", "commit build 'v1.28.15+k3s-deadbeef'"),
    ("v1.28.14+k3s1", "older than v1.28.15+k3s1; K3s does not support"),
    ("v1.30.7+k3s1", "skips a minor release"),
])
def test_a_bad_version_is_refused_and_changes_nothing(lab, version, says):
    record, pid = lab.state.record.read_bytes(), k3s_pid(lab, "node-b")
    before = versions(lab)
    done = lab_cli("node", "node-b", "upgrade", "--k3s-version", version)
    assert done.returncode == 1, done
    [line] = done.stderr.strip().splitlines()
    assert says in line and "nothing changed" in line
    if "K3s release" in says:  # the modelled ranges, to pick from
        assert "v1.28.12-v1.28.15+k3sN" in line
    if "build" in says:  # the known builds
        assert "v1.28.15+k3s-2d0661e3" in line
    assert lab.state.record.read_bytes() == record
    assert k3s_pid(lab, "node-b") == pid and versions(lab) == before


def test_the_same_version_is_a_no_op_that_says_so(lab):
    pid = k3s_pid(lab, "node-b")
    done = lab_cli("node", "node-b", "upgrade", "--k3s-version", AFFECTED)
    assert done.returncode == 0, done
    assert "already runs v1.28.15+k3s1; nothing to upgrade" in done.stdout
    assert k3s_pid(lab, "node-b") == pid


def test_lab_node_upgrade_switches_the_release_in_place(lab):
    pid, boot = k3s_pid(lab, "node-a"), lab.boot_id("node-a")
    done = lab_cli("node", "node-a", "upgrade", "--k3s-version", FIXED)
    assert done.returncode == 0, done
    assert f"{AFFECTED} (buggy) -> {FIXED} (fix1)" in done.stdout
    # from outside: the API, the process, the boot, the log, the lab
    wait_for(lambda: versions(lab)["node-a"] == FIXED, 20,
             "node-a's kubeletVersion")
    assert versions(lab)["node-b"] == AFFECTED
    assert k3s_pid(lab, "node-a") not in (None, pid)
    assert lab.boot_id("node-a") == boot  # an upgrade is no reboot
    log = lab.state.log("node-a", "k3s").read_text()
    assert f"Starting k3s {FIXED} agent (fix1" in log
    shown = lab_cli("node", "node-a", "version")
    assert shown.stdout.strip() == f"k3s version {FIXED} (fix1)"
    status = json.loads(lab_cli("status", "--json").stdout)
    assert {n["name"]: n["k3s_version"] for n in status["nodes"]} == {
        "kv-1": AFFECTED, "api-1": AFFECTED, "node-a": FIXED,
        "node-b": AFFECTED}


def test_upgrade_k3s_rolls_one_node_at_a_time(lab):
    """api-1 and node-b are upgraded, in name order, each back at the new
    version before the next; node-a (already there) is skipped."""
    pids = {n: k3s_pid(lab, n) for n in ("api-1", "node-a", "node-b")}
    done = actions.upgrade_k3s("control-plane,agent", FIXED, timeout=40,
                               configuration=CONFIG)
    rows = {row["node"]: row for row in done["nodes"]}
    assert [r["node"] for r in done["nodes"]] == ["api-1", "node-a",
                                                  "node-b"]
    assert rows["node-a"]["skipped"] == f"already at {FIXED}"
    for node in ("api-1", "node-b"):
        assert rows[node]["version_before"] == AFFECTED
        assert rows[node]["version_after"] == FIXED
        assert rows[node]["after"]["main_pid"] == k3s_pid(lab, node) != \
            pids[node]
    assert k3s_pid(lab, "node-a") == pids["node-a"]
    assert versions(lab) == {"kv-1": AFFECTED, "api-1": FIXED,
                             "node-a": FIXED, "node-b": FIXED}
    entries = {e["nodes"][0]: e for e in current_run(CONFIG).ledger.entries()
               if e["kind"] == "upgrade"}
    assert set(entries) == {"api-1", "node-b"}
    assert all(e["ended_at"] and e["healed_by"] == "seen back"
               for e in entries.values())
    # one at a time: node-b's upgrade began after api-1's had ended
    assert entries["api-1"]["ended_at"] <= entries["node-b"]["started_at"]


def test_the_quorum_guard_refuses_upgrading_the_only_etcd_member(lab):
    pid = k3s_pid(lab, "kv-1")
    with pytest.raises(ChaosK3sError, match="quorum"):
        actions.upgrade_k3s("etcd", FIXED, configuration=CONFIG)
    assert k3s_pid(lab, "kv-1") == pid and versions(lab)["kv-1"] == AFFECTED


def test_a_downgrade_is_refused_before_any_node_is_touched(lab):
    pids = {n: k3s_pid(lab, n) for n in ("kv-1", "node-a")}
    with pytest.raises(ChaosK3sError, match=r"node-a: v1\.28\.15\+k3s1 is "
                       r"older than v1\.28\.15\+k3s-2d0661e3"):
        # kv-1 (first by name) could be upgraded: it is not touched either
        actions.upgrade_k3s("name:kv-1|node-a", AFFECTED,
                            configuration=CONFIG)
    assert {n: k3s_pid(lab, n) for n in pids} == pids


def test_a_node_that_does_not_rejoin_fails_the_roll_naming_it(lab):
    """node-a is cut from the control plane: upgraded, it cannot come
    back; the action names it, and node-b is never touched."""
    pid_b = k3s_pid(lab, "node-b")
    actions.partition_roles("name:node-a", "control-plane", mode="reject",
                            ttl=60, configuration=CONFIG)
    try:
        with pytest.raises(EffectNotSeen) as caught:
            actions.upgrade_k3s("agent", NEXT, timeout=8,
                                configuration=CONFIG)
    finally:
        actions.heal_partitions(configuration=CONFIG)
    assert caught.value.node == "node-a"
    assert "node-a" in str(caught.value) and "node Ready" in str(
        caught.value)
    assert k3s_pid(lab, "node-b") == pid_b
    wait_for(lambda: versions(lab)["node-a"] == NEXT, 30,
             "node-a back at the new release once healed")
    assert versions(lab)["node-b"] == FIXED
