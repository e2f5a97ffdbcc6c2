"""Degraded links for real: tc netem in ckt- namespaces (netns transport).

Each node runs a TCP listener; a prober times TCP connects (one round
trip) from one namespace to others. A degradation must show its delay
and loss on the links it names and nothing on the others, expire on the
node, heal with read-back, and never replace another tool's qdisc.
"""

import json
import statistics
import subprocess
import sys
import time

import pytest

from chaosk3s.errors import FaultError
from chaosk3s.faults.apply import apply_plan, heal, read_active
from chaosk3s.model import Degradation, FaultPlan, Netem
from chaosk3s.transports import NetnsTransport, close_all
from tests.lab import ckt_net

pytestmark = pytest.mark.lab

PORT = 7011
DELAY_MS = 150.0
LOSS = 30.0
CONNECTS = 40
CONNECT_TIMEOUT = 0.6  # s: a lost SYN is resent after 1 s, so it times out

# Time CONNECTS TCP connects to each host:port, 8 at a time: seconds, or
# null for one that timed out.
CONNECT_TIMES = """
import json, socket, sys, time, concurrent.futures as cf
timeout, count = float(sys.argv[1]), int(sys.argv[2])
def once(target):
    host, port = target.rsplit(":", 1)
    start = time.monotonic()
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError:
        return None
    return time.monotonic() - start
out = {}
with cf.ThreadPoolExecutor(8) as pool:
    for target in sys.argv[3:]:
        out[target] = list(pool.map(once, [target] * count))
print(json.dumps(out))
"""


# Serve BULK bytes to every connection on the port given.
BULK_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16)
print("listening", flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"x" * int(sys.argv[2])); c.close()
"""
# Seconds to read everything a bulk server sends.
BULK_READ = """
import socket, sys, time
start = time.monotonic()
with socket.create_connection((sys.argv[1], int(sys.argv[2])), 30) as s:
    while s.recv(65536):
        pass
print(time.monotonic() - start)
"""
BULK_PORT, BULK = 7012, 200_000  # bytes: 0.8 s at 2 Mbit/s


@pytest.fixture(scope="module")
def net():
    net = ckt_net.create(["a", "b", "c"])
    try:
        for node in net.nodes:
            ckt_net.start_listener(net, node, [PORT])
            bulk = subprocess.Popen(
                ["ip", "netns", "exec", net.ns(node), sys.executable, "-c",
                 BULK_SERVER, str(BULK_PORT), str(BULK)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL, start_new_session=True, text=True)
            net.listeners.append(bulk)
            assert bulk.stdout.readline().strip() == "listening"
        yield net
    finally:
        close_all()
        ckt_net.destroy(net)


@pytest.fixture(scope="module")
def netem(net) -> bool:
    """Whether this kernel has netem (sch_netem): tried on a's loopback."""
    added = net.exec("a", "tc", "qdisc", "add", "dev", "lo", "root",
                     "netem", "delay", "1ms", check=False)
    if added.returncode == 0:
        net.exec("a", "tc", "qdisc", "del", "dev", "lo", "root")
    print(f"\nnetem in this kernel: {added.returncode == 0} "
          f"({added.stderr.strip()})")
    return added.returncode == 0


def bulk_seconds(net, src: str, server: str) -> float:
    """Seconds for src to read BULK bytes from server."""
    return float(net.exec(src, sys.executable, "-c", BULK_READ,
                          net.nodes[server], str(BULK_PORT)).stdout)


@pytest.fixture
def state_dir(net, tmp_path):
    """Afterwards nothing chaosk3s made is left: no qdisc of ours, no
    record, no timer."""
    state = str(tmp_path / "run")
    try:
        yield state
    finally:
        heal(netns(net), None, state)
        for node in net.nodes:
            assert qdiscs(net, node) == [], qdiscs(net, node)
        assert not list((tmp_path / "run").glob("*/*.tc"))


def netns(net) -> dict:
    return {n: NetnsTransport(n, net.ns(n)) for n in net.nodes}


def qdiscs(net, node: str) -> list[str]:
    """eth0's qdiscs other than the kernel's default (noqueue on veth)."""
    out = net.exec(node, "tc", "qdisc", "show", "dev", "eth0").stdout
    return [line for line in out.splitlines()
            if line.strip() and not line.startswith("qdisc noqueue 0:")]


def connect_times(net, src: str, *peers: str) -> dict[str, list]:
    targets = [f"{net.nodes[p]}:{PORT}" for p in peers]
    out = net.exec(src, sys.executable, "-c", CONNECT_TIMES,
                   str(CONNECT_TIMEOUT), str(CONNECTS), *targets)
    times = json.loads(out.stdout)
    return {peer: times[target] for peer, target in zip(peers, targets,
                                                        strict=True)}


def degrade(net, node: str, peer: str, **netem) -> Degradation:
    return Degradation(node, peer, net.nodes[peer], Netem(**netem))


def summary(times: list) -> tuple[float, int]:
    """(median seconds of the connects that succeeded, how many did not)."""
    done = [t for t in times if t is not None]
    return round(statistics.median(done), 4), len(times) - len(done)


def test_a_rate_limit_shows_on_the_degraded_link_only(net, state_dir):
    plan = FaultPlan("narrow-1", degradations=(
        degrade(net, "a", "b", rate_bits=2_000_000),), ttl_seconds=60)
    before = bulk_seconds(net, "b", "a")
    apply_plan(plan, netns(net), state_dir)
    to_b, to_c = bulk_seconds(net, "b", "a"), bulk_seconds(net, "c", "a")
    back = bulk_seconds(net, "a", "b")  # b's sending is not limited
    (fault,) = read_active({"a": netns(net)["a"]}, state_dir)[0].active
    healed = heal(netns(net), "narrow-1", state_dir)
    after = bulk_seconds(net, "b", "a")
    print(f"\n200 kB a->b before {before:.3f}s during {to_b:.3f}s after "
          f"{after:.3f}s; a->c during {to_c:.3f}s; b->a {back:.3f}s")
    # 1.6 Mbit at 2 Mbit/s is 0.8 s; htb lets a packet go while it has
    # tokens left, and veth hands it 64 kB GSO packets: one is a head start
    assert to_b >= 0.5
    assert before < 0.3 and to_c < 0.3 and back < 0.3 and after < 0.3
    assert [(x.peer, x.device, x.rate, x.netem, x.steered)
            for x in fault.links] == [("b", "eth0", "2Mbit", "", True)]
    assert [o.removed for o in healed] == [("CHAOSK3S-narrow-1",), (), ()]
    assert qdiscs(net, "a") == []


def test_without_netem_a_delay_fails_cleanly_on_every_node(net, netem,
                                                           state_dir):
    if netem:
        pytest.skip("this kernel has netem: the delay test measures it")
    plan = FaultPlan("nonetem-1", degradations=(
        degrade(net, "a", "b", rate_bits=10**6, delay_ms=50),
        degrade(net, "c", "b", rate_bits=10**6, delay_ms=50)),
        ttl_seconds=60)
    with pytest.raises(FaultError, match="sch_netem") as raised:
        apply_plan(plan, netns(net), state_dir)
    print(f"\n{raised.value}")
    assert qdiscs(net, "a") == [] and qdiscs(net, "c") == []
    assert all(o.active == () for o in read_active(netns(net), state_dir))


def test_delay_and_loss_show_on_the_degraded_link_only(net, netem,
                                                       state_dir):
    if not netem:
        pytest.skip("this kernel has no netem (sch_netem); see "
                    "docs/degraded-links.md")
    plan = FaultPlan("slow-1", degradations=(degrade(
        net, "a", "b", delay_ms=DELAY_MS, loss=LOSS),), ttl_seconds=60)
    before = {k: summary(v) for k, v in
              connect_times(net, "a", "b", "c").items()}
    apply_plan(plan, netns(net), state_dir)
    during = {k: summary(v) for k, v in
              connect_times(net, "a", "b", "c").items()}
    back = summary(connect_times(net, "b", "a")["a"])  # a's SYN-ACKs
    around = summary(connect_times(net, "c", "a")["a"])
    print(f"\nbefore {before} during {during} b->a {back} c->a {around}")
    (fault,) = read_active({"a": netns(net)["a"]}, state_dir)[0].active
    healed = heal(netns(net), "slow-1", state_dir)
    after = summary(connect_times(net, "a", "b")["b"])
    delay = DELAY_MS / 1000
    # a -> b: one delayed SYN per connect, ~LOSS % of them lost
    assert delay <= during["b"][0] < delay + 0.1
    assert 3 <= during["b"][1] <= 22  # binomial(40, 0.3): mean 12
    # a -> c and c -> a untouched; b -> a delayed (a's answers to b)
    assert during["c"][0] < 0.05 and during["c"][1] == 0
    assert around[0] < 0.05 and around[1] == 0
    assert delay <= back[0] < delay + 0.1
    assert fault.kind == "degradation" and fault.run_id == "slow-1"
    assert [(link.peer, link.peer_address, link.device, link.steered)
            for link in fault.links] == [("b", net.nodes["b"], "eth0",
                                          True)]
    assert "delay 150ms" in fault.links[0].netem and \
        "loss 30%" in fault.links[0].netem
    assert fault.timer.alive
    assert [o.removed for o in healed] == [("CHAOSK3S-slow-1",), (), ()]
    assert after[0] < 0.05 and after[1] == 0 and qdiscs(net, "a") == []


def test_it_expires_on_the_node_and_a_second_heal_is_a_no_op(net,
                                                             state_dir):
    plan = FaultPlan("exp-1", degradations=(
        degrade(net, "b", "c", rate_bits=10**6),
        degrade(net, "b", "a", rate_bits=10**6)), ttl_seconds=2.5)
    apply_plan(plan, netns(net), state_dir)
    assert bulk_seconds(net, "c", "b") >= 1.0  # 1.6 Mbit at 1 Mbit/s
    lines = qdiscs(net, "b")
    assert any(" htb " in x and " root " in x for x in lines), lines
    assert ckt_net.wait_for(lambda: qdiscs(net, "b") == [], 10), \
        qdiscs(net, "b")
    assert read_active(netns(net), state_dir)[1].active == ()
    assert bulk_seconds(net, "c", "b") < 0.3
    assert [o.removed for o in heal(netns(net), "exp-1", state_dir)] == [
        (), (), ()]


def test_another_tools_root_qdisc_is_refused_and_kept(net, state_dir):
    net.exec("c", "tc", "qdisc", "add", "dev", "eth0", "root", "handle",
             "1:", "htb")
    try:
        plan = FaultPlan("clash-1", degradations=(
            degrade(net, "a", "c", rate_bits=10**6),
            degrade(net, "c", "a", rate_bits=10**6)), ttl_seconds=60)
        with pytest.raises(FaultError, match="failed on c"):
            apply_plan(plan, netns(net), state_dir)
        assert qdiscs(net, "a") == []  # a was healed again
        (theirs,) = qdiscs(net, "c")
        assert theirs.startswith("qdisc htb 1: root")
        assert read_active(netns(net), state_dir)[2].active == ()
    finally:
        net.exec("c", "tc", "qdisc", "del", "dev", "eth0", "root")


# A runner that applies a flapping fault and then waits to be killed.
RUNNER = """
import sys, time
from chaosk3s.faults.apply import apply_plan
from chaosk3s.model import Cut, Degradation, FaultPlan, Flap, Netem
from chaosk3s.transports import NetnsTransport
state, a, b, c, prefix = sys.argv[1:6]
plan = FaultPlan("flap-1", (Cut("a", "b", b),), ttl_seconds=6,
                 degradations=(Degradation("a", "c", c,
                                           Netem(rate_bits=10**6)),),
                 flap=Flap(period_seconds=2, on_seconds=1, count=3))
apply_plan(plan, {"a": NetnsTransport("a", prefix + "a")}, state)
print("applied", flush=True)
time.sleep(600)
"""


def on_off(net) -> str:
    """'1' when a's chain and qdisc of the fault are both in place, '0'
    when neither is, '?' when one is (between two steps)."""
    chain = "CHAOSK3S-flap-1" in net.iptables_save("a")
    qdisc = any(" htb " in line for line in qdiscs(net, "a"))
    return "1" if chain and qdisc else "0" if not (chain or qdisc) else "?"


def flappers(net, node: str) -> list[str]:
    """Command lines in node's namespace that are chaosk3s timers or
    flappers."""
    found = []
    for pid in net.exec(node, "ip", "netns", "pids", net.ns(node)
                        ).stdout.split():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                line = f.read()
        except OSError:
            continue
        if b"chaosk3s_timer=" in line:
            found.append(line.decode(errors="replace")[:60])
    return found


def test_flapping_goes_on_without_its_runner_and_ends_at_the_ttl(
        net, state_dir):
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, state_dir, net.nodes["a"],
         net.nodes["b"], net.nodes["c"], ckt_net.PREFIX],
        stdout=subprocess.PIPE,
        text=True, start_new_session=True)
    try:
        assert runner.stdout.readline().strip() == "applied"
        started = time.monotonic()
        runner.kill()  # SIGKILL: nothing of the runner heals anything
        runner.wait(timeout=5)
        assert flappers(net, "a"), "no flapper seen while flapping"
        seen = ""
        while time.monotonic() - started < 5.5:
            seen += on_off(net)
            time.sleep(0.1)
    finally:
        if runner.poll() is None:
            runner.kill()
    runs = [r for r in seen.replace("?", "").split("0") if r]
    print(f"\nseen on a (0.1 s apart): {seen}")
    assert len(runs) >= 2, seen  # on, off, on again: the node flaps
    assert seen.count("0") >= 5, seen
    # after the ttl (6 s from the apply): nothing left on the node
    assert ckt_net.wait_for(lambda: on_off(net) == "0" and not flappers(
        net, "a"), 4), (on_off(net), flappers(net, "a"))
    assert "CHAOSK3S" not in net.iptables_save("a")
    out = net.exec("a", "tc", "filter", "show", "dev", "eth0").stdout
    assert out.strip() == "" and qdiscs(net, "a") == []
    assert read_active({"a": netns(net)["a"]}, state_dir)[0].active == ()
