"""A dual-stack lab (IPv6 on the bridge and every node): a partition cuts
IPv6 for real, in ip6tables, and the heal restores it (issue 12, items 7
and 8). A TCP connect over IPv6 fails during the partition and works
after; so does one over IPv4."""

import ipaddress
import subprocess
import sys

import pytest

from chaosk3s import actions, probes
from chaosk3s.lab import procs
from chaosk3s.lab.spec import default_spec, dual_stack
from chaosk3s.target import get_target
from tests.lab.conftest import netns_exec, private_lab

pytestmark = pytest.mark.lab
CONFIG = {"target": "lab"}
PORT = 7100
LISTENER = """
import socket, sys
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1]))); s.listen(16)
print("listening", flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"ok"); c.close()
"""
CONNECT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), 2) as s:
        print(s.recv(2).decode())
except OSError as exc:
    print(type(exc).__name__)
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("dualstack")
    with private_lab(root, dual_stack(default_spec())) as lab:
        listener = procs.Service(
            "server-cp-0", "listener", lab.names.netns("server-cp-0"),
            (sys.executable, "-c", LISTENER, str(PORT)),
            root / "listener.log", root / "listener.pid")
        procs.start(listener)
        try:
            yield lab
        finally:
            procs.stop([listener])


def connect(address: str) -> str:
    return netns_exec("agent-0", sys.executable, "-c", CONNECT, address,
                      str(PORT)).stdout.strip()


def wait_listening(address: str) -> None:
    for _ in range(50):
        if connect(address) == "ok":
            return
        subprocess.run(["sleep", "0.1"], check=True)
    raise AssertionError(f"no listener on [{address}]:{PORT}")


def test_nodes_report_both_families(lab):
    cp = lab.spec().node("server-cp-0")
    # .13 -> ::d, the same host number (fd13:11::/64 on the default lab)
    assert cp.address6 == str(ipaddress.IPv6Network(lab.spec().subnet6)[13])
    assert lab.names.name != "default" or cp.address6 == "fd13:11::d"
    node = get_target(CONFIG).topology().node("server-cp-0")
    assert node.all_addresses == (cp.address, cp.address6)


def test_a_partition_cuts_ipv6_and_the_heal_restores_it(lab):
    cp = lab.spec().node("server-cp-0")
    wait_listening(cp.address6)
    assert connect(cp.address) == "ok"
    done = actions.partition_roles("name:agent-0", "control-plane",
                                   mode="reject", ttl=120,
                                   configuration=CONFIG)
    try:
        assert connect(cp.address6) == "ConnectionRefusedError"
        assert connect(cp.address) == "ConnectionRefusedError"
        rules6 = netns_exec("agent-0", "ip6tables", "-S").stdout
        assert f"-d {cp.address6}/128" in rules6
        active = probes.active_faults(CONFIG)
        assert {c["peer_address"] for f in active for c in f["cuts"]} == {
            cp.address, cp.address6}
    finally:
        actions.heal_partitions(configuration=CONFIG)
    assert connect(cp.address6) == "ok" and connect(cp.address) == "ok"
    assert "CHAOSK3S" not in netns_exec("agent-0", "ip6tables",
                                        "-S").stdout
    assert probes.active_faults(CONFIG) == []
    assert done["fault_id"]
