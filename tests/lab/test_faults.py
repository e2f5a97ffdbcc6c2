"""Partitions for real: iptables in ckt- namespaces, over netns and SSH.

Every node runs a small TCP listener on LISTEN_PORTS; probes connect from
one namespace to another and report ok / timeout / refused. Each test
starts with another tool's rules in place and proves they survive.
"""

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaosk3s.errors import ChaosK3sError, CommandFailed
from chaosk3s.faults.apply import FaultError, apply_plan, heal, read_active
from chaosk3s.lab import procs
from chaosk3s.lab import ssh as labssh
from chaosk3s.model import Cut, FaultPlan
from chaosk3s.transports import NetnsTransport, SshTransport, close_all
from tests.lab import ckt_net

pytestmark = pytest.mark.lab

LISTEN_PORTS = [7001, 7002]
P1, P2 = LISTEN_PORTS
TTL = 2.5  # seconds; node-local expiry in tests
OTHER_TOOL = [  # another tool's rules that chaosk3s must never touch
    ["iptables", "-A", "INPUT", "-s", "10.213.99.201/32", "-m", "comment",
     "--comment", "other-tool", "-j", "ACCEPT"],
    ["iptables", "-N", "OTHER-TOOL"],
    ["iptables", "-A", "OTHER-TOOL", "-s", "10.213.99.202/32", "-j",
     "RETURN"],
    ["iptables", "-A", "OUTPUT", "-j", "OTHER-TOOL"]]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    net = ckt_net.create(["a", "b", "c"])
    services = []
    try:
        for node in net.nodes:
            ckt_net.start_listener(net, node, LISTEN_PORTS)
        net.layout = labssh.SshLayout(tmp_path_factory.mktemp("ckt") / "ssh")
        for node in ("a", "b"):
            services.append(ckt_net.start_sshd(net, net.layout, node))
        yield net
    finally:
        close_all()
        procs.stop(services)
        ckt_net.destroy(net)


@pytest.fixture
def state_dir(net, tmp_path):
    """Per test: other tools' rules first; afterwards everything chaosk3s
    made is gone, theirs is intact (then removed)."""
    for node in net.nodes:
        for argv in OTHER_TOOL:
            net.exec(node, *argv)
    before = {node: others(net, node) for node in net.nodes}
    state = str(tmp_path / "run")
    try:
        yield state
    finally:
        heal(netns(net), None, state)
        for node in net.nodes:
            assert "CHAOSK3S" not in net.iptables_save(node)
            assert others(net, node) == before[node]
            assert timers_running(net, node) == []
            for argv in (["iptables", "-D", *OTHER_TOOL[0][2:]],
                         ["iptables", "-D", "OUTPUT", "-j", "OTHER-TOOL"],
                         ["iptables", "-F", "OTHER-TOOL"],
                         ["iptables", "-X", "OTHER-TOOL"]):
                net.exec(node, *argv)


def others(net, node: str) -> list[str]:
    return [line for line in net.iptables_save(node).splitlines()
            if "CHAOSK3S" not in line and not line.startswith("#")
            and not line.startswith(":")]


def timers_running(net, node: str) -> list[int]:
    """Processes in node's namespace that are chaosk3s expiry timers."""
    found = []
    for pid in net.exec(node, "ip", "netns", "pids", net.ns(node),
                        check=False).stdout.split():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"chaosk3s_timer=" in cmdline:
            found.append(int(pid))
    return found


def netns(net) -> dict:
    return {n: NetnsTransport(n, net.ns(n)) for n in net.nodes}


def ssh(net, nodes=("a", "b")) -> dict:
    return {n: SshTransport(n, labssh.client_access(net.layout,
                                                    net.nodes[n]))
            for n in nodes}


def cut(net, node: str, peer: str, **kw) -> Cut:
    return Cut(node, peer, net.nodes[peer], **kw)


def reach(net, src: str, *targets: tuple[str, int], timeout: float = 1.0):
    return ckt_net.outcomes(net, src, list(targets), timeout)


def active_cuts(transports, state: str) -> dict[str, list[tuple]]:
    return {o.node: [(f.run_id, c.peer, c.direction, c.mode, c.ports)
                     for f in o.active for c in f.cuts]
            for o in read_active(transports, state)}


# -- netns ----------------------------------------------------------------

def test_drop_both_black_holes_the_pair_and_heal_restores(net, state_dir):
    plan = FaultPlan("drop-1", (cut(net, "a", "b"), cut(net, "b", "a")),
                     ttl_seconds=60)
    done = apply_plan(plan, netns(net), state_dir)
    assert [(o.node, o.ok, o.chain) for o in done] == [
        ("a", True, "CHAOSK3S-drop-1"), ("b", True, "CHAOSK3S-drop-1")]
    assert reach(net, "a", ("b", P1), ("c", P1)) == {
        ("b", P1): "timeout", ("c", P1): "ok"}
    assert reach(net, "c", ("a", P1), ("b", P1)) == {
        ("a", P1): "ok", ("b", P1): "ok"}
    assert reach(net, "b", ("a", P2)) == {("a", P2): "timeout"}
    # our jump comes first; the other tool's rules follow, untouched
    rules = net.exec("a", "iptables", "-S", "INPUT").stdout.splitlines()
    assert rules[1].endswith("-j CHAOSK3S-drop-1") and "other-tool" in \
        rules[2]
    healed = heal(netns(net), plan, state_dir)
    assert [o.removed for o in healed] == [("CHAOSK3S-drop-1",),
                                           ("CHAOSK3S-drop-1",), ()]
    assert reach(net, "a", ("b", P1)) == {("b", P1): "ok"}


def test_reject_makes_connects_fail_fast(net, state_dir):
    plan = FaultPlan("rej-1", (cut(net, "a", "b", mode="reject"),),
                     ttl_seconds=60)
    apply_plan(plan, netns(net), state_dir)
    into = ckt_net.probe(net, "b", [("a", P1)], timeout=5)[("a", P1)]
    out = ckt_net.probe(net, "a", [("b", P1)], timeout=5)[("b", P1)]
    print(f"\nreject: connect into the node {into}, out of it {out}")
    assert into[0] == "refused" and into[1] < 1.0
    assert out[0] in ("refused", "error:1") and out[1] < 1.0
    assert reach(net, "c", ("a", P1)) == {("a", P1): "ok"}


def test_from_refuses_flows_the_peer_opens_only(net, state_dir):
    plan = FaultPlan("from-1", (cut(net, "b", "a", direction="from"),),
                     ttl_seconds=60)
    apply_plan(plan, netns(net), state_dir)
    assert reach(net, "a", ("b", P1)) == {("b", P1): "timeout"}
    assert reach(net, "b", ("a", P1)) == {("a", P1): "ok"}
    assert reach(net, "c", ("b", P1)) == {("b", P1): "ok"}
    assert active_cuts(netns(net), state_dir)["b"] == [
        ("from-1", "a", "from", "drop", ())]


def test_to_refuses_flows_the_node_opens_only(net, state_dir):
    plan = FaultPlan("to-1", (cut(net, "b", "a", direction="to"),),
                     ttl_seconds=60)
    apply_plan(plan, netns(net), state_dir)
    assert reach(net, "b", ("a", P1), ("c", P1)) == {
        ("a", P1): "timeout", ("c", P1): "ok"}
    assert reach(net, "a", ("b", P1)) == {("b", P1): "ok"}


def test_ports_limit_the_cut(net, state_dir):
    plan = FaultPlan("port-1", (cut(net, "b", "a", ports=(P1,)),),
                     ttl_seconds=60)
    apply_plan(plan, netns(net), state_dir)
    assert reach(net, "a", ("b", P1), ("b", P2)) == {
        ("b", P1): "timeout", ("b", P2): "ok"}
    assert reach(net, "b", ("a", P1), ("a", P2)) == {
        ("a", P1): "timeout", ("a", P2): "ok"}


def test_heal_is_idempotent_and_cancels_the_timer(net, state_dir):
    plan = FaultPlan("idem-1", (cut(net, "a", "c"),), ttl_seconds=60)
    apply_plan(plan, netns(net), state_dir)
    apply_plan(plan, netns(net), state_dir)  # re-apply replaces
    (fault,) = read_active({"a": netns(net)["a"]}, state_dir)[0].active
    assert fault.hooks == ("INPUT", "OUTPUT") and fault.timer.alive
    assert net.iptables_save("a").count("-j CHAOSK3S-idem-1") == 2
    assert timers_running(net, "a") == [int(fault.timer.ident)]
    first = heal(netns(net), "idem-1", state_dir)
    assert first[0].removed == ("CHAOSK3S-idem-1",)
    assert ckt_net.wait_for(lambda: timers_running(net, "a") == [], 5)
    again = heal(netns(net), "idem-1", state_dir)
    assert all(o.ok and o.removed == () for o in again)
    assert all(o.ok for o in heal(netns(net), None, state_dir))
    assert reach(net, "a", ("c", P1)) == {("c", P1): "ok"}


CHILD = """
import sys, time
from chaosk3s.faults.apply import apply_plan
from chaosk3s.model import Cut, FaultPlan
from chaosk3s.transports import NetnsTransport
state, a, b, ttl = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
prefix = sys.argv[5]
plan = FaultPlan("kill-1", (Cut("a", "b", b), Cut("b", "a", a)),
                 ttl_seconds=ttl)
apply_plan(plan, {n: NetnsTransport(n, prefix + n) for n in "ab"}, state)
print("applied", flush=True)
time.sleep(120)
"""


def test_rules_expire_on_the_node_after_the_runner_is_killed(net,
                                                             state_dir):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, state_dir, net.nodes["a"],
         net.nodes["b"], str(TTL), ckt_net.PREFIX], stdout=subprocess.PIPE,
        text=True,
        start_new_session=True)
    try:
        assert child.stdout.readline().strip() == "applied"
        applied = time.monotonic()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert reach(net, "a", ("b", P1), timeout=0.5) == {("b", P1): "timeout"}
    transports = netns(net)
    assert ckt_net.wait_for(
        lambda: not any(o.active for o in read_active(transports, state_dir)),
        TTL + 15, interval=0.2)
    expired = time.monotonic() - applied
    print(f"\nexpired {expired:.2f}s after apply (ttl {TTL}s)")
    assert TTL - 0.5 < expired < TTL + 15
    assert reach(net, "a", ("b", P1)) == {("b", P1): "ok"}
    assert not list(Path(state_dir).glob("*/CHAOSK3S-*.timer"))


class FailingApply(NetnsTransport):
    """The transport seam: this node refuses the apply step."""

    def run(self, command, timeout=30.0, check=True, input=None,
            description=None):
        if description and description.startswith("apply partition"):
            raise CommandFailed(self.node, description, 4,
                                "iptables-restore: line 3 failed")
        return super().run(command, timeout, check, input, description)


def test_a_failed_node_rolls_back_the_others(net, state_dir):
    transports = {**netns(net), "c": FailingApply("c", net.ns("c"))}
    plan = FaultPlan("roll-1", (cut(net, "a", "b"), cut(net, "b", "a"),
                                cut(net, "c", "a")), ttl_seconds=60)
    with pytest.raises(FaultError) as info:
        apply_plan(plan, transports, state_dir)
    message = str(info.value)
    assert "failed on c" in message and "iptables-restore: line 3" in message
    assert "Healed 3 node(s)" in message
    for node in net.nodes:
        assert "CHAOSK3S" not in net.iptables_save(node)
    assert reach(net, "a", ("b", P1)) == {("b", P1): "ok"}


def test_an_unreachable_node_stops_the_plan_before_any_change(net,
                                                             state_dir):
    ghost = labssh.client_access(net.layout, ckt_net.UNUSED_ADDRESS)
    transports = {**netns(net), "c": SshTransport("c", ghost,
                                                  connect_timeout=2)}
    plan = FaultPlan("ghost-1", (cut(net, "a", "b"), cut(net, "c", "a")),
                     ttl_seconds=60)
    with pytest.raises(ChaosK3sError, match="cannot reach c") as info:
        apply_plan(plan, transports, state_dir)
    assert ckt_net.UNUSED_ADDRESS in str(info.value)
    for node in net.nodes:
        assert "CHAOSK3S" not in net.iptables_save(node)


# -- ssh ------------------------------------------------------------------

def host_connect(address: str, port: int, timeout: float = 1.0) -> str:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return "ok"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return f"error:{exc.errno}"


def test_over_ssh_the_management_path_stays_open(net, state_dir):
    runner = Cut("a", "runner", ckt_net.HOST_ADDRESS)  # cut a from us
    plan = FaultPlan("ssh-1", (runner, cut(net, "a", "b"),
                               cut(net, "b", "a")), ttl_seconds=60)
    transports = ssh(net)
    done = apply_plan(plan, transports, state_dir)
    assert any(ckt_net.HOST_ADDRESS in r and "--dport 22" in r
               for r in done[0].rules)
    assert host_connect(net.nodes["a"], P1) == "timeout"
    assert reach(net, "a", ("b", P1)) == {("b", P1): "timeout"}
    close_all()  # even a new SSH connection gets through
    assert transports["a"].run("echo still here").stdout == "still here\n"
    cuts = active_cuts(transports, state_dir)
    assert sorted(cuts["a"]) == [("ssh-1", "b", "both", "drop", ()),
                                 ("ssh-1", "runner", "both", "drop", ())]
    healed = heal(transports, plan, state_dir)
    assert [o.removed for o in healed] == [("CHAOSK3S-ssh-1",)] * 2
    assert host_connect(net.nodes["a"], P1) == "ok"


def test_over_ssh_rules_expire_after_the_session_is_gone(net, state_dir):
    plan = FaultPlan("ssh-ttl", (cut(net, "a", "c"),), ttl_seconds=TTL)
    apply_plan(plan, ssh(net), state_dir)
    applied = time.monotonic()
    close_all()  # the SSH sessions and master end; the timer must not
    assert reach(net, "a", ("c", P1), timeout=0.5) == {("c", P1): "timeout"}
    assert ckt_net.wait_for(
        lambda: "CHAOSK3S" not in net.iptables_save("a"), TTL + 15, 0.2)
    assert time.monotonic() - applied > TTL - 0.5
    assert reach(net, "a", ("c", P1)) == {("c", P1): "ok"}
