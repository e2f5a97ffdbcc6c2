"""Lab names: what a name selects, and that two names never share any of
it (chaosk3s.namedlabs, chaosk3s.lab.placement, chaosk3s.lab.state)."""

import ipaddress
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaosk3s.errors import SpecError
from chaosk3s.lab.access import inventory, lab_commands
from chaosk3s.lab.placement import candidates, moved
from chaosk3s.lab.spec import default_spec, dual_stack
from chaosk3s.lab.ssh import SshLayout
from chaosk3s.lab.state import LabState, recorded_labs, state_dir
from chaosk3s.namedlabs import (
    LabNames,
    check_lab_name,
    configured_lab_name,
    lab_of_target,
    owner,
)
from chaosk3s.target import node_state_dir, target_name
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
NAMES = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)


@pytest.fixture(autouse=True)
def no_lab_name_in_env(monkeypatch):
    monkeypatch.delenv("CHAOSK3S_LAB_NAME", raising=False)


@pytest.mark.parametrize("bad", [
    "", "A", "1a", "abcdefghi", "a-b", "a_b", " a", "a ", "lab.1", "ä",
    123, None, True])
def test_a_bad_name_is_refused_saying_what_to_use(bad):
    with pytest.raises(SpecError, match="1-8 lower-case letters or digits"):
        check_lab_name(bad)


def test_the_default_lab_keeps_the_names_it_always_had():
    names = LabNames()
    assert (names.netns("agent-0"), names.bridge, names.veth(0),
            names.veth(12)) == ("ck3s-agent-0", "ck3s-br0", "ck3s-v0",
                                "ck3s-v12")
    assert (names.operator, names.sudoers, names.cluster) == (
        "ck3s-operator", "chaosk3s-lab", "chaosk3s-lab")
    assert (names.fault_state_dir, names.target) == ("/run/chaosk3s", "lab")
    assert default_spec().subnet == "10.213.11.0/24"


def test_a_named_lab_has_names_of_its_own():
    names = LabNames("m1")
    assert (names.netns("agent-0"), names.bridge, names.veth(3)) == (
        "ck3sm1-agent-0", "ck3sm1-br", "ck3sm1-3")
    assert (names.operator, names.sudoers, names.cluster) == (
        "ck3sm1-operator", "chaosk3s-lab-m1", "chaosk3s-lab-m1")
    assert (names.fault_state_dir, names.target) == (
        "/run/chaosk3s/lab.m1", "lab:m1")


def test_link_names_fit_ifnamsiz_or_are_refused_by_name():
    longest = LabNames("abcdefgh")
    assert len(longest.bridge) == 15 and longest.max_nodes == 100
    assert len(longest.veth(99)) == 15
    with pytest.raises(SpecError, match="at most 100 nodes"):
        longest.veth(100)


@given(NAMES, NAMES, st.integers(0, 99))
def test_two_names_never_share_a_namespace_or_link(a, b, index):
    one, two = LabNames(a), LabNames(b)
    for item in (one.bridge, one.veth(index), one.netns("agent-0"),
                 one.netns("v1"), one.netns("br")):
        assert owner(item) == a
        assert two.owns(item) == (a == b)
    assert len(one.bridge) <= 15 and len(one.veth(index)) <= 15


def test_owner_ignores_what_is_not_a_lab():
    assert [owner(n) for n in ("ckt-a", "ckt-br0", "eth0", "ck3s", "ck3sA-x",
                               "cktest0", "ck3s-br0", "ck3sw1-br")] == [
        None, None, None, None, None, None, "default", "w1"]


def test_subnet_candidates_are_deterministic_distinct_and_apart():
    first = candidates("m1")
    assert first == candidates("m1") and len(set(first)) == 128
    named = ipaddress.IPv4Network("10.213.128.0/17")
    for subnet, subnet6 in first:
        network = ipaddress.IPv4Network(subnet)
        assert network.subnet_of(named) and network.prefixlen == 24
        third = network.network_address.packed[2]
        assert ipaddress.IPv6Network(subnet6) == ipaddress.IPv6Network(
            f"fd13:{third:x}::/64")
    # two names may prefer the same /24; placement then takes the next
    assert candidates("m1")[0] == candidates("m6")[0]
    assert candidates("m1")[1] != candidates("m6")[0]


def test_moving_a_spec_keeps_every_host_number():
    spec = dual_stack(default_spec())
    there = moved(spec, "10.213.200.0/24", "fd13:c8::/64")
    assert there.subnet == "10.213.200.0/24"
    assert there.host_address == "10.213.200.1"
    for old, new in zip(spec.nodes, there.nodes, strict=True):
        assert old.address.split(".")[-1] == new.address.split(".")[-1]
        assert new.address.startswith("10.213.200.")
        assert new.address6 == str(ipaddress.IPv6Network("fd13:c8::/64")[
            int(new.address.split(".")[-1])])
    single = moved(default_spec(), "10.213.200.0/24", None)
    assert all(n.address6 is None for n in single.nodes)


def test_state_dirs_per_name(monkeypatch, tmp_path):
    monkeypatch.setenv("CHAOSK3S_STATE_DIR", str(tmp_path))
    assert state_dir() == tmp_path and state_dir("m1") == \
        tmp_path / "labs" / "m1"
    assert LabState().root == tmp_path
    monkeypatch.setenv("CHAOSK3S_LAB_NAME", "w0")
    assert LabState().root == tmp_path / "labs" / "w0"
    assert LabState(name="default").root == tmp_path
    LabState(name="w0").save(default_spec(), "up")
    LabState(name="default").save(default_spec(), "creating")
    (tmp_path / "labs" / "Not-A-Name").mkdir()
    (tmp_path / "labs" / "Not-A-Name" / "lab.json").write_text("{}")
    assert recorded_labs() == {"default": tmp_path,
                               "w0": tmp_path / "labs" / "w0"}


def test_target_follows_lab_name_then_the_environment(monkeypatch):
    assert target_name({}) == "lab"
    assert target_name({"lab_name": "default"}) == "lab"
    assert target_name({"lab_name": "m1"}) == "lab:m1"
    assert target_name({"target": "lab:m1"}) == "lab:m1"
    assert target_name({"target": "inv.yaml", "lab_name": "m1"}) == \
        "inv.yaml"
    monkeypatch.setenv("CHAOSK3S_LAB_NAME", "w1")
    assert target_name({}) == "lab:w1"
    assert target_name({"lab_name": "m2"}) == "lab:m2"
    assert configured_lab_name({"lab_name": ""}) == "w1"
    with pytest.raises(SpecError, match="lab name 'M1'"):
        target_name({"lab_name": "M1"})
    with pytest.raises(SpecError, match="names lab m1, but lab_name is m2"):
        target_name({"target": "lab:m1", "lab_name": "m2"})
    # an explicit lab:N wins over the environment's default
    assert target_name({"target": "lab:m3"}) == "lab:m3"
    with pytest.raises(SpecError, match="lab name 'x_y'"):
        lab_of_target("lab:x_y")


def test_fault_state_on_lab_nodes_is_per_lab():
    assert node_state_dir("lab") == "/run/chaosk3s"
    assert node_state_dir("lab:m1") == "/run/chaosk3s/lab.m1"
    assert node_state_dir("/etc/inventory.yaml") == "/run/chaosk3s"


def test_node_commands_name_the_lab_and_never_read_it_from_the_env(
        tmp_path):
    default = lab_commands(LabState(tmp_path, "default"))["restart"]
    assert default.startswith(f"CHAOSK3S_STATE_DIR={tmp_path} ")
    assert default.endswith("-m chaosk3s.lab.nodectl {node} restart")
    named = lab_commands(LabState(tmp_path / "labs" / "m1", "m1"))["stop"]
    assert named.endswith(f"-m chaosk3s.lab.nodectl --state-dir "
                          f"{tmp_path}/labs/m1 --lab m1 {{node}} stop")
    assert "CHAOSK3S_STATE_DIR" not in named


def test_a_named_lab_inventory_reaches_its_own_namespaces(tmp_path):
    state = LabState(tmp_path, "m1")
    raw = inventory(state, default_spec(), SshLayout(tmp_path / "ssh"))
    assert raw["cluster"] == "chaosk3s-lab-m1"
    assert raw["allowed_clusters"] == ["chaosk3s-lab-m1"]
    assert {n["transport"]["namespace"] for n in raw["nodes"]} == {
        f"ck3sm1-{n.name}" for n in default_spec().nodes}


def test_every_shipped_experiment_declares_lab_name():
    paths = sorted((ROOT / "experiments").glob("*.json"))
    assert paths, ROOT / "experiments"
    for path in paths:
        declared = json.loads(path.read_text())["configuration"]["lab_name"]
        assert (declared["type"], declared["key"], declared["default"]) == (
            "env", "CHAOSK3S_LAB_NAME", "default"), path.name


@pytest.mark.parametrize("argv", [
    ("lab", "up", "--name", "Bad1"), ("lab", "down", "--name", "a-b"),
    ("lab", "status", "--name", "toolongname")])
def test_the_cli_refuses_a_bad_name_before_anything(argv, tmp_path):
    done = run_cli(*argv, env={"CHAOSK3S_STATE_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert "Invalid value for '--name'" in done.stderr
    assert "1-8 lower-case letters or digits" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_cli_names_the_lab_that_is_not_up(tmp_path):
    done = run_cli("lab", "status", "--name", "m1",
                   env={"CHAOSK3S_STATE_DIR": str(tmp_path)})
    assert done.returncode == 1
    assert "no lab named m1 is up" in done.stderr
    assert "chaosk3s lab up --name m1" in done.stderr


def test_lab_list_shows_the_recorded_labs(tmp_path):
    LabState(tmp_path / "labs" / "zz9", "zz9").save(
        moved(default_spec(), "10.213.250.0/24", None), "creating")
    done = run_cli("lab", "list", "--json",
                   env={"CHAOSK3S_STATE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert listed["state_dir"] == str(tmp_path)
    (row,) = [r for r in listed["labs"] if r["name"] == "zz9"]
    assert (row["phase"], row["subnet"], row["nodes"], row["bridge"],
            row["namespaces"], row["links"]) == (
        "creating", "10.213.250.0/24", 6, "ck3szz9-br", [], [])
    lines = run_cli("lab", "list",
                    env={"CHAOSK3S_STATE_DIR": str(tmp_path)}).stdout
    assert any(line.split()[:2] == ["zz9", "creating"]
               for line in lines.splitlines())
