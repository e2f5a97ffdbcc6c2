"""Rolling upgrades without a lab: version order, what the lab's upgrade
command and the upgrade_k3s action refuse, and that a refusal changes
nothing (the lab's recorded state stays byte for byte; no command runs).
"""

import pytest

from chaosk3s import actions, probes
from chaosk3s.errors import ArgumentError, SpecError
from chaosk3s.inventory import parse_inventory
from chaosk3s.k3s_versions import version_order
from chaosk3s.lab.releases import parse_release
from chaosk3s.lab.spec import parse_spec
from chaosk3s.lab.state import LabState
from chaosk3s.lab.upgrade import target_release
from tests.conftest import run_cli

AFFECTED, FIXED = "v1.28.15+k3s1", "v1.28.15+k3s-2d0661e3"


@pytest.mark.parametrize("older,newer", [
    ("v1.28.14+k3s1", "v1.28.15+k3s1"),
    ("v1.28.15+k3s1", "v1.28.15+k3s2"),
    ("v1.28.15+k3s2", FIXED),  # a branch build after the patch's tags
    (FIXED, "v1.29.11+k3s1"),
    ("v1.29.9+k3s1", "v1.29.10+k3s1"),  # numbers, not text
])
def test_versions_order_by_minor_patch_then_build(older, newer):
    assert version_order(older) < version_order(newer)


@pytest.mark.parametrize("text", ["", "latest", "1.28.15+k3s1",
                                  "v1.28.15", "v1.28.15+rke2r1",
                                  "v1.28.15+k3s1\n", "v1.28.15+k3s1;id"])
def test_what_is_no_k3s_version_is_refused(text):
    with pytest.raises(ValueError, match="is not a K3s version"):
        version_order(text)


@pytest.mark.parametrize("current,version,says", [
    (AFFECTED, "v1.28.14+k3s1", "v1.28.14+k3s1 is older than "
     "v1.28.15+k3s1; K3s does not support downgrades (k3s-io/k3s #7537)"),
    (FIXED, AFFECTED, "older than v1.28.15+k3s-2d0661e3"),
    (AFFECTED, "v1.30.7+k3s1", "v1.30.7+k3s1 skips a minor release after "
     "v1.28.15+k3s1"),
    (AFFECTED, "v1.28.99+k3s1", "unknown K3s release 'v1.28.99+k3s1': "
     "the lab emulates v1.28.12-v1.28.15+k3sN"),
    (AFFECTED, "v1.28.11+k3s1", "older than the load-balancer code"),
    (AFFECTED, "bogus", "unknown K3s release 'bogus'"),
])
def test_the_lab_refuses_downgrades_and_unmodelled_releases(
        current, version, says):
    with pytest.raises(SpecError) as refused:
        target_release(parse_release(current), version)
    message = str(refused.value)
    assert message.startswith("upgrade refused, nothing changed: ")
    assert says in message and "\n" not in message


def test_a_node_release_in_the_spec_is_checked_and_kept():
    spec = parse_spec({"k3s_version": AFFECTED, "nodes": [
        {"name": "kv-1", "role": "etcd", "k3s_version": FIXED}]})
    assert spec.release_of(spec.nodes[0]).family == "fix1"
    with pytest.raises(SpecError, match="node kv-1: unknown K3s release"):
        parse_spec({"nodes": [{"name": "kv-1", "role": "etcd",
                               "k3s_version": "v9"}]})


@pytest.fixture
def saved_lab(tmp_path, monkeypatch):
    """A lab's recorded state (no namespaces: a refusal must not need
    them, since it happens before anything is stopped)."""
    monkeypatch.setenv("CHAOSK3S_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("CHAOSK3S_LAB_NAME", raising=False)
    state = LabState(tmp_path, "default")
    state.save(parse_spec({"k3s_version": AFFECTED, "nodes": [
        {"name": "kv-1", "role": "etcd"},
        {"name": "agent-0", "role": "agent", "server": "kv-1"}]}), "up")
    return state


@pytest.mark.parametrize("argv,says", [
    (["agent-0", "upgrade", "--k3s-version", "bogus"],
     "unknown K3s release 'bogus'"),
    (["agent-0", "upgrade", "--k3s-version", "v1.28.13+k3s1"],
     "K3s does not support downgrades"),
    (["agent-0", "upgrade"], "upgrade needs --k3s-version V"),
    (["nobody", "upgrade", "--k3s-version", FIXED],
     "no lab node named 'nobody'"),
])
def test_lab_node_upgrade_refusals_are_one_line_and_change_nothing(
        saved_lab, argv, says):
    record = saved_lab.record.read_bytes()
    done = run_cli("lab", "node", *argv)
    assert done.returncode == 1, done
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("chaosk3s: error: ") and says in line
    assert saved_lab.record.read_bytes() == record


def test_the_same_version_is_a_no_op_on_a_stopped_lab_too(saved_lab):
    record = saved_lab.record.read_bytes()
    done = run_cli("lab", "node", "agent-0", "upgrade", "--k3s-version",
                   AFFECTED)
    assert done.returncode == 0, done
    assert "agent-0 already runs v1.28.15+k3s1; nothing to upgrade" in \
        done.stdout
    assert saved_lab.record.read_bytes() == record


def test_k3s_version_goes_with_upgrade_only(saved_lab):
    done = run_cli("lab", "node", "agent-0", "restart", "--k3s-version",
                   FIXED)
    assert done.returncode == 2 and "--k3s-version goes with upgrade " \
        "only" in done.stderr


@pytest.mark.parametrize("where,commands", [
    ("commands.agents.upgrade", {"commands": {"agents": {
        "upgrade": "curl -sfL https://get.k3s.io | sh -"}}}),
    ("roles.etcd.commands.upgrade", {"roles": {"etcd": {"commands": {
        "upgrade": "k3s-upgrade latest"}}}}),
])
def test_an_upgrade_command_without_version_is_refused(where, commands):
    with pytest.raises(SpecError) as refused:
        parse_inventory({"cluster": "prod", "defaults": {"transport": {
            "type": "ssh", "host": "10.0.0.1"}},
            "nodes": [{"name": "agent-0"}], **commands}, "inv.yaml")
    assert f"inventory inv.yaml: {where} must contain {{version}}" in str(
        refused.value)


def test_there_is_no_default_upgrade_command():
    inventory = parse_inventory({"cluster": "prod", "defaults": {
        "transport": {"type": "ssh", "host": "10.0.0.1"}},
        "nodes": [{"name": "agent-0", "role": "agent"}]}, "inv.yaml")
    with pytest.raises(SpecError, match="has no 'upgrade' command"):
        inventory.command("agent", "upgrade", "agent-0")


@pytest.mark.parametrize("version", ["latest", "v1.31", "1.31.4+k3s1",
                                     "v1.31.4+k3s1 && reboot", 131])
def test_upgrade_k3s_refuses_what_is_no_version_before_any_target(version):
    with pytest.raises(ArgumentError) as refused:
        actions.upgrade_k3s("agent", version, configuration={
            "target": "/nonexistent/inventory.yaml"})
    message = str(refused.value)
    assert message.startswith("chaosk3s.actions.upgrade_k3s: argument "
                              f"version={version!r} is invalid: expected "
                              "a K3s version")


@pytest.mark.parametrize("before_method", ["latest", "v1.31"])
def test_nodes_at_version_checks_before_method_too(before_method):
    with pytest.raises(ArgumentError, match="before_method"):
        probes.nodes_at_version("v1.31.4+k3s1", before_method=before_method)
