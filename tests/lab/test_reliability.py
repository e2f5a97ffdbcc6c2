"""Heal everything, always (issue 12, item 8), on a real lab.

A run is killed (SIGKILL) or stopped (SIGTERM) at the worst moments, with
an apply or a heal in flight; faults run eight at a time; the API goes
away; a runner dies with K3s stopped. Afterwards nothing chaosk3s made is
left on any node: no chain, no timer process, no stopped K3s, no open
ledger entry. docs/reliability.md lists how often each ran.

"In flight" is made deterministic with a gate: the run's PATH starts
with a test directory whose `iptables-restore` records its input and
waits while a gate file exists, then runs the real one. The nodes (netns)
inherit that PATH, so an apply or a heal holds exactly where it changes
iptables, for as long as the test wants.
"""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from chaosk3s import actions, probes
from chaosk3s.lab import procs
from chaosk3s.run import end_run
from chaosk3s.target import forget_targets
from tests.conftest import run_cli
from tests.lab.conftest import lab_names, netns_exec
from tests.lab.k3s_helpers import wait_for

pytestmark = pytest.mark.lab
CONFIG = {"target": "lab"}
SHIM = """#!/bin/sh
# test gate: record the input, wait while the gate exists, then apply
dir={dir}
n=$(date +%s%N)
cat > "$dir/call.$n.$$"
touch "$dir/entered.$n.$$"
while [ -e "$dir/gate" ]; do sleep 0.05; done
exec {real} "$@" < "$dir/call.$n.$$"
"""



@pytest.fixture
def gate(tmp_path) -> Path:
    """A directory to put first on the run's PATH (see the docstring)."""
    shim = tmp_path / "shim"
    shim.mkdir()
    for tool in ("iptables-restore", "ip6tables-restore"):
        real = subprocess.run(["sh", "-c", f"command -v {tool} || echo "
                               f"/usr/sbin/{tool}"], capture_output=True,
                              text=True, check=True).stdout.strip()
        path = shim / tool
        path.write_text(SHIM.format(dir=shim, real=real))
        path.chmod(0o755)
    yield shim
    (shim / "gate").unlink(missing_ok=True)


def entered(shim: Path, mark: str) -> bool:
    """Whether an iptables-restore whose input contains mark is waiting."""
    for flag in shim.glob("entered.*"):
        call = shim / flag.name.replace("entered.", "call.", 1)
        if call.exists() and mark in call.read_text():
            return True
    return False


def chains(lab) -> dict[str, list[str]]:
    found = {}
    for node in lab.spec().nodes:
        rules = netns_exec(node.name, "iptables", "-S").stdout
        mine = [r for r in rules.splitlines() if "CHAOSK3S" in r]
        if mine:
            found[node.name] = mine
    return found


def timer_processes() -> list[str]:
    """chaosk3s timers on this machine, but for those in a namespace of
    another lab or test net (a parallel worker's, pytest -n): this lab's
    and any that escaped to the host's or an unnamed namespace count."""
    theirs = others_namespaces()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            netns = (proc / "ns" / "net").stat().st_ino
        except OSError:
            continue
        if b"chaosk3s_timer=" in cmdline and netns not in theirs:
            found.append(proc.name)
    return found


def others_namespaces() -> set[int]:
    """The inodes of the named namespaces that are not this lab's."""
    ours = lab_names()
    found = set()
    for netns in Path("/run/netns").glob("*"):
        try:
            if not ours.owns(netns.name):
                found.add(netns.stat().st_ino)
        except OSError:  # removed meanwhile
            continue
    return found


def open_ledger_entries() -> list[dict]:
    return [e for p in Path(os.environ["CHAOSK3S_LEDGER_DIR"]).glob(
        "*.json") for e in json.loads(p.read_text())["faults"]
        if not e.get("ended_at")]


def _seconds_left(entry: dict) -> float:
    return (datetime.fromisoformat(entry["expires_at"]) -
            datetime.now(UTC)).total_seconds()


def assert_nothing_left(lab) -> None:
    assert chains(lab) == {}
    assert timer_processes() == []
    assert open_ledger_entries() == []
    assert probes.active_faults(CONFIG) == []
    wait_for(lambda: probes.all_nodes_ready(configuration=CONFIG), 40,
             "every node Ready")


def experiment(tmp_path: Path, method: list, rollbacks: list = (),
               configuration: dict | None = None) -> Path:
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps({
        "title": "reliability", "description": "test",
        "configuration": {"target": "lab", **(configuration or {})},
        "controls": [{"name": "chaosk3s", "provider": {
            "type": "python", "module": "chaosk3s.control"}}],
        "runtime": {"rollbacks": {"strategy": "always"}},
        "method": method, "rollbacks": list(rollbacks)}))
    return path


def action(func: str, background: bool = False, **arguments) -> dict:
    step = {"type": "action", "name": f"{func}-{len(str(arguments))}",
            "provider": {"type": "python", "module": "chaosk3s.actions",
                         "func": func, "arguments": arguments}}
    return {**step, "background": True} if background else step


def hold(seconds: float) -> dict:
    return {"type": "probe", "name": "hold", "provider": {
        "type": "python", "module": "chaosk3s.probes",
        "func": "nodes_not_ready_within",
        "arguments": {"seconds": seconds}}}


def start_run(tmp_path: Path, path: Path, shim: Path | None = None
              ) -> subprocess.Popen:
    env = os.environ.copy()
    if shim is not None:
        env["PATH"] = f"{shim}:{env['PATH']}"
    chaos = Path(sys.executable).parent / "chaos"
    return subprocess.Popen([str(chaos), "run", str(path)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)


def cleanup_ok() -> str:
    result = run_cli("cleanup")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "none remain" in result.stdout
    return result.stdout


CUT = action("partition_roles", group="agent", peers="control-plane",
             ttl=300)


def signal_during(tmp_path: Path, gate: Path, method: list, sig: int,
                  mark: str, before=None, after=None) -> None:
    """Run method; once an iptables-restore whose input has mark is held
    at the gate (the gate is shut when before() is true, or at once),
    send sig, then open the gate (after after(), if given) and wait for
    the run to end."""
    if before is None:
        (gate / "gate").touch()
    run = start_run(tmp_path, experiment(tmp_path, method), gate)
    try:
        if before is not None:
            wait_for(before, 30, "the moment to shut the gate")
            (gate / "gate").touch()
        wait_for(lambda: entered(gate, mark), 30, f"{mark} in flight")
        run.send_signal(sig)
        if after is not None:
            after()
        (gate / "gate").unlink()
        run.wait(60)
    finally:
        run.kill()
        (gate / "gate").unlink(missing_ok=True)


def test_kill_9_during_apply_then_cleanup_heals(lab, tmp_path, gate):
    signal_during(tmp_path, gate, [CUT, hold(60)], signal.SIGKILL,
                  ":CHAOSK3S-")
    wait_for(lambda: len(chains(lab)) == 2, 15, "the orphaned apply lands")
    assert len(open_ledger_entries()) == 1  # recorded before applying
    cleanup_ok()
    assert_nothing_left(lab)


def test_kill_9_during_heal_then_cleanup_heals(lab, tmp_path, gate):
    signal_during(tmp_path, gate, [CUT, hold(3), action("heal_partitions"),
                                   hold(60)], signal.SIGKILL,
                  "-X CHAOSK3S-", before=lambda: len(chains(lab)) == 2)
    assert len(open_ledger_entries()) == 1  # the heal never read back
    cleanup_ok()
    assert_nothing_left(lab)


def test_sigterm_during_apply_heals_what_lands_after(lab, tmp_path, gate):
    """Reproduction (issue 12): SIGTERM's heal ran while the apply was in
    flight, marked the fault ended, and the apply then landed."""
    signal_during(tmp_path, gate, [CUT, hold(60)], signal.SIGTERM,
                  ":CHAOSK3S-", after=lambda: time.sleep(1.0))
    assert chains(lab) == {}  # healed before the process ended
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["status"] == "interrupted"
    (fault,) = journal["chaosk3s"]["faults"]
    assert fault["ended_at"] and journal["chaosk3s"]["open_faults"] == []
    assert_nothing_left(lab)


PAIRS = [("agent-0", "server-cp-0"), ("agent-1", "server-cp-0"),
         ("agent-0", "server-etcd-1"), ("agent-1", "server-etcd-1"),
         ("agent-0", "server-etcd-2"), ("agent-1", "server-etcd-2"),
         ("server-etcd-1", "server-cp-0"), ("server-etcd-2", "server-cp-0")]


def test_eight_background_partitions_in_one_experiment(lab, tmp_path):
    """Reproduction (issue 12): eight background activities got the same
    fault id, and one plan silently replaced another's cut."""
    cuts = [action("partition_roles", background=True, group=f"name:{a}",
                   peers=f"name:{b}", ttl=300) for a, b in PAIRS]
    run = start_run(tmp_path, experiment(
        tmp_path, [*cuts, hold(8)], [action("heal_partitions")]))
    try:
        seen = wait_for(lambda: sum(map(len, (
            [r for r in rules if r.startswith("-N")]
            for rules in chains(lab).values()))) == 8 and chains(lab), 60,
            "eight chains at once")
        assert run.wait(120) is not None
    finally:
        run.kill()
    assert sorted(seen) == ["agent-0", "agent-1", "server-etcd-1",
                            "server-etcd-2"]
    journal = json.loads((tmp_path / "journal.json").read_text())
    faults = journal["chaosk3s"]["faults"]
    assert len({f["id"] for f in faults}) == 8
    assert all(f["ended_at"] for f in faults)
    assert_nothing_left(lab)


def test_a_stop_whose_runner_is_killed_comes_back_by_itself(lab,
                                                           tmp_path):
    run = start_run(tmp_path, experiment(
        tmp_path, [action("stop_k3s", nodes="name:agent-0"), hold(120)],
        configuration={"fault_ttl": 8}))
    k3s = next(s for s in lab.node_services("agent-0", None)
               if s.name == "k3s")
    try:  # killed once the stop is confirmed and its start re-armed
        # at fault_ttl (armed first at fault_ttl plus the stop's timeout)
        wait_for(lambda: procs.pid_of(k3s) is None and any(
            _seconds_left(e) < 60 for e in open_ledger_entries()), 60,
            "agent-0 stopped, its start re-armed")
        stopped = time.monotonic()
        run.send_signal(signal.SIGKILL)
        run.wait(10)
    finally:
        run.kill()
    wait_for(lambda: procs.pid_of(k3s), 20, "k3s started by the node")
    assert time.monotonic() - stopped < 8 + 6
    wait_for(lambda: probes.all_nodes_ready(configuration=CONFIG), 40,
             "agent-0 Ready again")
    out = cleanup_ok()  # closes the ledger entry: read back, running
    assert "1 recorded fault(s) healed" in out
    assert_nothing_left(lab)


def test_cleanup_with_the_api_down_and_no_roles(lab, tmp_path):
    """The API down with an inventory that lists no roles (as in the
    README example): the ledger says how to reach each node."""
    raw = yaml.safe_load(lab.state.inventory.read_text())
    for node in raw["nodes"]:
        node.pop("role", None)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(raw))
    config = {"target": str(inventory)}
    actions.partition_roles("agent", "control-plane", ttl=300,
                            configuration=config)
    actions.stop_k3s("name:server-cp-0", configuration=config)
    end_run()
    forget_targets()
    assert not probes.api_server_available(2, configuration=config)
    result = run_cli("cleanup", "--target", str(inventory))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 recorded fault(s) healed" in result.stdout
    assert probes.api_server_available(30, configuration=config)
    assert_nothing_left(lab)
