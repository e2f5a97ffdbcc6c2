"""Every node action proves its effect, on the netns and ssh transports.

Each action goes through its public function, on a real lab, and the test
observes the effect from outside the extension: the node's link going
down and up, its k3s processes replaced or gone, its boot id. Each action
also gets an inventory whose command is wrong (fails, is missing, or
exits 0 doing nothing) and must then fail with an error that names the
node, the command, what was expected and what was seen.
"""

import dataclasses
import json
import threading
import time
from datetime import UTC, datetime

import pytest
import yaml

from chaosk3s import actions
from chaosk3s.faults.service import EffectNotSeen
from chaosk3s.faults.undo import EXPIRED
from chaosk3s.lab import hostnet, procs
from chaosk3s.lab.cluster import Lab
from chaosk3s.lab.spec import default_spec
from chaosk3s.run import current_run
from chaosk3s.safe_cleanup import heal_run
from tests.lab.conftest import lab_names, private_lab
from tests.lab.k3s_helpers import wait_for

pytestmark = pytest.mark.lab

CONFIG = {"target": "lab"}
BROKEN = {"fails": "/bin/false", "missing": "/nonexistent/k3s-ctl",
          "does nothing": "true"}


@pytest.fixture(scope="module", params=["netns", "ssh"])
def lab(request, tmp_path_factory):
    with private_lab(tmp_path_factory.mktemp(f"nodeactions-{request.param}"),
                     dataclasses.replace(default_spec(),
                                         ssh=request.param == "ssh")) as lab:
        yield lab


def k3s_pid(lab: Lab, node: str) -> int | None:
    service = next(s for s in lab.node_services(node, None)
                   if s.name == "k3s")
    return procs.pid_of(service)


def link_up(node: str) -> bool:
    out = hostnet.run(["ip", "-n", lab_names().netns(node), "-j", "link",
                       "show", "eth0"]).stdout
    return "UP" in json.loads(out)[0]["flags"]


class LinkWatch:
    """Samples a node's link every 50 ms in a thread while it runs."""

    def __init__(self, node: str):
        self.node, self.seen, self._stop = node, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.seen.append(link_up(self.node))
            time.sleep(0.05)

    def __enter__(self) -> "LinkWatch":
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(5)


def broken_inventory(lab: Lab, tmp_path, action: str, command: str) -> dict:
    raw = yaml.safe_load(lab.state.inventory.read_text())
    for group in ("servers", "agents"):
        raw["commands"][group][action] = command
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(raw))
    return {"target": str(path)}


def test_reboot_takes_the_node_down_and_back(lab):
    boot, pid = lab.boot_id("agent-0"), k3s_pid(lab, "agent-0")
    with LinkWatch("agent-0") as watch:
        done = actions.reboot_nodes("name:agent-0", configuration=CONFIG)
    assert False in watch.seen and link_up("agent-0")  # down, then back
    evidence = done["nodes"][0]
    assert evidence["node"] == "agent-0"
    assert evidence["boot_id_before"] == boot
    assert evidence["boot_id_after"] == lab.boot_id("agent-0") != boot
    wait_for(lambda: k3s_pid(lab, "agent-0"), 20, "k3s running again")
    assert k3s_pid(lab, "agent-0") != pid


def test_restart_replaces_the_processes(lab):
    pid = k3s_pid(lab, "server-etcd-1")
    done = actions.restart_k3s("name:server-etcd-1", configuration=CONFIG)
    evidence = done["nodes"][0]
    now = k3s_pid(lab, "server-etcd-1")
    assert now and now != pid
    assert evidence["before"]["main_pid"] == pid
    assert evidence["after"]["main_pid"] == now
    assert evidence["after"]["active_state"] == "active"


def test_stop_then_start_a_server(lab):
    done = actions.stop_k3s("name:server-etcd-2", configuration=CONFIG)
    assert k3s_pid(lab, "server-etcd-2") is None
    assert done["nodes"][0]["after"]["active_state"] == "inactive"
    started = actions.start_k3s("name:server-etcd-2", configuration=CONFIG)
    evidence = started["nodes"][0]
    assert evidence["after"]["main_pid"] == k3s_pid(lab, "server-etcd-2")
    assert evidence["serving"] == "pong"  # the server answers /ping


def test_a_stop_holds_its_duration_from_the_stop_then_starts_itself(lab):
    """The node-side start is re-armed once K3s is seen stopped, so the
    outage is `duration` from then (not minus the stop's own time); the
    fault then ends, read back, when the node's start returned."""
    done = actions.stop_k3s("name:agent-1", duration=4,
                            configuration=CONFIG)["nodes"][0]
    confirmed = datetime.fromisoformat(done["confirmed_at"])
    assert k3s_pid(lab, "agent-1") is None
    wait_for(lambda: k3s_pid(lab, "agent-1"), 20, "k3s started by the node")
    back = datetime.now(UTC)
    # whole seconds on the node: fired at 4 s, deadline written as 5 s
    assert 3.9 <= (back - confirmed).total_seconds() <= 4 + 3
    assert 4 <= (datetime.fromisoformat(done["starts_by_itself_at"]) -
                 confirmed).total_seconds() <= 6
    assert heal_run(current_run(CONFIG)).ok
    entry = next(e for e in current_run(CONFIG).ledger.entries()
                 if e["id"] == done["fault_id"])
    assert entry["healed_by"] == EXPIRED
    assert entry["expires_at"] == done["starts_by_itself_at"]
    ended = datetime.fromisoformat(entry["ended_at"])
    assert confirmed < ended <= back  # when the node's start returned


@pytest.mark.parametrize("how", sorted(BROKEN))
@pytest.mark.parametrize("action", ["restart", "stop", "start", "reboot"])
def test_a_wrong_command_fails_clearly_and_changes_nothing(
        lab, tmp_path, action, how):
    command = BROKEN[how]
    config = broken_inventory(lab, tmp_path, action, command)
    node = "agent-1"
    if action == "start":
        lab.stop_node(node)
    pid, boot = k3s_pid(lab, node), lab.boot_id(node)
    call = {"restart": actions.restart_k3s, "stop": actions.stop_k3s,
            "start": actions.start_k3s, "reboot": actions.reboot_nodes
            }[action]
    started = time.monotonic()
    try:
        with pytest.raises(EffectNotSeen) as caught:
            call(f"name:{node}", timeout=3, configuration=config)
    finally:
        if action == "start":
            lab.start_node(node)
    error = caught.value
    assert error.node == node and error.action == action
    assert command in str(error) and node in str(error)
    assert "expected" in str(error) and "seen" in str(error)
    if how != "does nothing":
        # a command that fails is reported at once, not after the bound
        assert time.monotonic() - started < 3 + 2, str(error)
    if action != "start":
        assert k3s_pid(lab, node) == pid
    assert lab.boot_id(node) == boot
