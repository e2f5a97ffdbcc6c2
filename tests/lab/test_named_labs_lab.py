"""Two named labs up at once on one machine, and neither touches the other:
their namespaces, bridges, subnets and state are their own, a partition
in one leaves no rule in the other, `lab down --name a` leaves b
running, and `lab down --all` removes both."""

import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaosk3s import actions
from chaosk3s.lab import hostnet
from chaosk3s.lab.access import node_readiness
from chaosk3s.lab.cluster import Lab
from chaosk3s.lab.spec import parse_spec
from chaosk3s.lab.state import LabState
from chaosk3s.namedlabs import LabNames
from tests.conftest import run_cli
from tests.lab.conftest import SMALL_SPEC, private_labs, worker_lab_name

pytestmark = pytest.mark.lab

SPEC = SMALL_SPEC
# A parallel worker's pair carries its number, so workers never meet.
_TAG = (worker_lab_name() or "w").removeprefix("w")
A, B = f"t{_TAG}a", f"t{_TAG}b"


def namespaces(name: str) -> list[str]:
    return hostnet.list_lab_namespaces(LabNames(name))


def chaosk3s_rules(name: str) -> dict[str, list[str]]:
    """Every CHAOSK3S line of iptables-save in each of the lab's
    namespaces (every table)."""
    return {ns: [line for line in subprocess.run(
        ["ip", "netns", "exec", ns, "iptables-save"], capture_output=True,
        text=True, check=True).stdout.splitlines() if "CHAOSK3S" in line]
        for ns in namespaces(name)}


def reach(from_ns: str, address: str, port: int = 6443) -> str:
    """Connect from a namespace: ok, or the error's name."""
    script = ("import socket,sys\ntry:\n socket.create_connection(("
              f"'{address}',{port}),timeout=2).close();print('ok')\n"
              "except OSError as e:print(type(e).__name__)")
    return subprocess.run(["ip", "netns", "exec", from_ns, sys.executable,
                           "-c", script], capture_output=True, text=True,
                          check=True, timeout=20).stdout.strip()


@pytest.fixture(scope="module")
def two_labs(tmp_path_factory) -> Iterator[dict[str, Lab]]:
    """Labs A and B, up at once in one state dir (the CLI sees it too)."""
    with private_labs(tmp_path_factory.mktemp("named"),
                      parse_spec(SPEC, source="two small labs"),
                      [A, B]) as labs:
        yield labs
    for name in (A, B):
        assert not Path(LabNames(name).fault_state_dir).exists()


def test_each_lab_has_its_own_namespaces_bridge_subnet_and_state(two_labs):
    a, b = two_labs[A].spec(), two_labs[B].spec()
    assert namespaces(A) == sorted(f"ck3s{A}-{n}" for n in
                                   ("agent-0", "server-cp-0",
                                    "server-etcd-0"))
    assert namespaces(B) == [ns.replace(A, B, 1) for ns in namespaces(A)]
    links = hostnet.all_links()
    assert {f"ck3s{A}-br", f"ck3s{B}-br"} <= set(links)
    assert not ipaddress.ip_network(a.subnet).overlaps(
        ipaddress.ip_network(b.subnet))
    assert "10.213.11.0/24" not in (a.subnet, b.subnet)
    assert two_labs[A].state.root != two_labs[B].state.root
    for name, spec in ((A, a), (B, b)):
        assert node_readiness(spec) == {n.name: "True" for n in spec.nodes}
        bridge = json.loads(subprocess.run(
            ["ip", "-j", "addr", "show", f"ck3s{name}-br"],
            capture_output=True, text=True, check=True).stdout)
        assert f"{spec.host_address}/24" in [
            f"{i['local']}/{i['prefixlen']}" for i in bridge[0]["addr_info"]]
    # no lab reaches the other: its nodes have a route to their subnet only
    assert reach(f"ck3s{A}-agent-0", b.node("server-cp-0").address) != "ok"
    assert reach(f"ck3s{A}-agent-0", a.node("server-cp-0").address) == "ok"
    listed = json.loads(run_cli("lab", "list", "--json").stdout)["labs"]
    rows = {row["name"]: row for row in listed if row["name"] in (A, B)}
    assert {n: (r["phase"], r["subnet"]) for n, r in rows.items()} == {
        A: ("up", a.subnet), B: ("up", b.subnet)}


def test_a_partition_in_one_lab_has_no_rules_in_the_other(two_labs):
    config = {"target": "lab", "lab_name": A}
    done = actions.partition_roles("agent", "control-plane", ttl=120,
                                   configuration=config)
    try:
        rules = chaosk3s_rules(A)
        # the group's side holds the rules: agent-0 drops server-cp-0
        peer = two_labs[A].spec().node("server-cp-0").address
        assert any(f"-d {peer}/32" in line and "DROP" in line
                   for line in rules[f"ck3s{A}-agent-0"])
        assert namespaces(B), "lab B has no namespaces to compare"
        assert chaosk3s_rules(B) == {ns: [] for ns in namespaces(B)}
        timers = Path(LabNames(A).fault_state_dir)
        assert list(timers.glob("*/CHAOSK3S-*.timer"))
        assert not Path(LabNames(B).fault_state_dir).exists()
        # lab B's faults and cleanup see and touch nothing of lab A
        seen = run_cli("faults", "--json", env={"CHAOSK3S_LAB_NAME": B})
        assert seen.returncode == 0, seen.stderr
        found = json.loads(seen.stdout)["active"]
        assert (found["target"], found["recorded"], found["on_nodes"]) == (
            f"lab:{B}", [], [])
        cleanup = run_cli("cleanup", "--target", f"lab:{B}")
        assert cleanup.returncode == 0, cleanup.stderr
        assert chaosk3s_rules(A) == rules
        assert reach(f"ck3s{B}-agent-0",
                     two_labs[B].spec().node("server-cp-0").address) == "ok"
    finally:
        actions.heal_partitions(done["fault_id"], configuration=config)
    assert namespaces(A), "lab A has no namespaces to compare"
    assert chaosk3s_rules(A) == {ns: [] for ns in namespaces(A)}


def test_down_by_name_leaves_the_other_lab_running(two_labs):
    b_before = namespaces(B)
    down = run_cli("lab", "down", "--name", A)
    assert down.returncode == 0, down.stderr
    assert namespaces(A) == [] and hostnet.list_lab_links(LabNames(A)) == []
    assert not two_labs[A].state.exists()
    assert namespaces(B) == b_before
    spec = two_labs[B].spec()
    assert node_readiness(spec) == {n.name: "True" for n in spec.nodes}
    status = run_cli("lab", "status", "--name", B, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["etcd"]["quorum"] is True
    gone = run_cli("lab", "status", "--name", A)
    assert gone.returncode == 1 and f"no lab named {A} is up" in gone.stderr


@pytest.mark.solo
def test_down_all_removes_every_lab(two_labs):
    """`--all` means every lab on the machine: run serially (marker
    solo), or it would take parallel workers' labs down too."""
    if not LabState(name=A).exists():  # test_down_by_name took it down
        Lab(LabState(name=A)).up(parse_spec(SPEC, source="again"))
    assert two_labs[A].spec().subnet != two_labs[B].spec().subnet
    assert namespaces(A) and namespaces(B)
    down = run_cli("lab", "down", "--all")
    assert down.returncode == 0, down.stderr
    for name in (A, B):
        assert namespaces(name) == []
        assert hostnet.list_lab_links(LabNames(name)) == []
        assert not LabState(name=name).exists()
    assert json.loads(run_cli("lab", "list", "--json").stdout)["labs"] == []
