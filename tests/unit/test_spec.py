"""Lab spec validation: every bad spec is refused with a clear message."""

import pytest

from chaosk3s.errors import SpecError
from chaosk3s.lab.releases import (
    BUGGY,
    FIX1,
    REWORK,
    parse_release,
    release_table,
)
from chaosk3s.lab.spec import default_spec, dual_stack, parse_spec
from chaosk3s.lab.state import spec_to_dict


def _spec(nodes, **extra):
    return parse_spec({"nodes": nodes, **extra})


def test_default_spec_is_the_11311_reproduction():
    spec = default_spec()
    assert [n.name for n in spec.nodes] == [
        "server-etcd-0", "server-etcd-1", "server-etcd-2", "server-cp-0",
        "agent-0", "agent-1"]
    assert all(n.server == "server-etcd-0" for n in spec.nodes[1:])
    assert spec.nodes[0].server is None
    assert spec.release.version == "v1.28.15+k3s-2d0661e3"
    assert spec.release.family == FIX1 and spec.release.commit == "2d0661e3"
    assert len({n.address for n in spec.nodes}) == 6


@pytest.mark.parametrize("version,family,bootstrap", [
    ("v1.28.14+k3s1", BUGGY, False), ("v1.28.15+k3s1", BUGGY, False),
    ("v1.28.15+k3s-2d0661e3", FIX1, False), ("v1.28.12+k3s1", BUGGY, False),
    ("v1.29.7+k3s1", BUGGY, False), ("v1.29.11+k3s1", FIX1, False),
    ("v1.30.3+k3s1", BUGGY, False), ("v1.31.0+k3s1", BUGGY, False),
    ("v1.32.2+k3s-dfffdfa2", REWORK, True), ("v1.32.2+k3s1", REWORK, False),
    ("v1.31.2+k3s1", BUGGY, False), ("v1.31.3+k3s1", FIX1, False),
    ("v1.31.4+k3s1", REWORK, False), ("v1.30.7+k3s1", FIX1, False),
    ("v1.29.12+k3s1", REWORK, False), ("v1.32.3+k3s1", REWORK, True),
    ("v1.31.6+k3s1", REWORK, False), ("v1.31.7+k3s1", REWORK, True),
])
def test_release_families(version, family, bootstrap):
    release = parse_release(version)
    assert (release.family, release.bootstrap_fix) == (family, bootstrap)


@pytest.mark.parametrize("version", ["v1.27.3+k3s1", "1.28.15", "latest",
                                     "v1.28.99+k3s1", "v1.28.15+k3s"])
def test_unknown_release_lists_the_known_ones(version):
    with pytest.raises(SpecError, match="unknown K3s release.*v1.28.12-"
                       "v1.28.15.*v1.28.15\\+k3s-2d0661e3"):
        default_spec(version)


@pytest.mark.parametrize("version,first", [
    ("v1.28.11+k3s2", "v1.28.12"), ("v1.28.0+k3s1", "v1.28.12"),
    ("v1.29.6+k3s1", "v1.29.7"), ("v1.30.2+k3s1", "v1.30.3")])
def test_releases_older_than_the_modelled_lb_are_refused(version, first):
    with pytest.raises(SpecError, match=f"older than the load-balancer code "
                       f"the lab models.*from {first}.*emulates v1.28.12-"):
        default_spec(version)


def test_unknown_commit_builds_are_refused():
    with pytest.raises(SpecError, match="commit build 'v1.28.15\\+k3s-"
                       "deadbeef' is not in the lab's release table"):
        default_spec("v1.28.15+k3s-deadbeef")


def test_release_table_places_every_modelled_release():
    rows = {row["versions"]: row for row in release_table()}
    assert rows["v1.28.12-v1.28.15"]["family"] == BUGGY
    assert rows["v1.28.15+k3s-2d0661e3"]["family"] == FIX1
    assert rows["v1.31.3"]["family"] == FIX1
    assert rows["v1.31.4-v1.31.6"]["family"] == REWORK
    assert rows["v1.31.7-v1.31.14"]["bootstrap_fix"] is True
    assert all(row["source"] for row in rows.values())
    for row in rows.values():  # every row parses, with its own family
        first = row["versions"].split("-v")[0]
        version = first if "+" in first else first + "+k3s1"
        assert parse_release(version).family == row["family"]


E0 = {"name": "server-etcd-0", "role": "etcd"}


@pytest.mark.parametrize("nodes,message", [
    ([E0, {"name": "x", "role": "master", "server": "server-etcd-0"}],
     "unknown role 'master'"),
    ([E0, {"name": "a", "role": "agent", "server": "nope"}],
     "unknown join server 'nope'"),
    ([E0, {"name": "a", "role": "agent", "server": "a"}],
     "joins through itself"),
    ([E0, {"name": "server-etcd-0", "role": "agent",
           "server": "server-etcd-0"}], "duplicate node name"),
    ([{"name": "c", "role": "control-plane"}], "no etcd-capable server"),
    ([E0, {"name": "a", "role": "agent"}], "exactly one node must omit"),
    ([E0, {"name": "a", "role": "agent", "server": "server-etcd-0"},
      {"name": "b", "role": "agent", "server": "a"}], "is an agent"),
    ([E0, {"name": "Bad_Name", "role": "agent"}], "must be 1-30"),
    ([E0, {"name": "a", "role": "agent", "server": "server-etcd-0",
           "color": "red"}], "unknown key"),
    ([], "non-empty list"),
])
def test_invalid_specs_are_rejected(nodes, message):
    with pytest.raises(SpecError, match=message):
        _spec(nodes)


def test_join_loops_are_rejected():
    with pytest.raises(SpecError, match="loop"):
        _spec([E0, {"name": "a", "role": "server", "server": "b"},
               {"name": "b", "role": "server", "server": "a"}])


def test_bad_timings_and_subnet():
    with pytest.raises(SpecError, match="unknown timing"):
        _spec([E0], timings={"grace": 3})
    with pytest.raises(SpecError, match="positive number"):
        _spec([E0], timings={"node_monitor_grace": -1})
    with pytest.raises(SpecError, match="not an IPv4 network"):
        _spec([E0], subnet="10.0.0.1/24")
    with pytest.raises(SpecError, match="too small"):
        _spec([E0], subnet="10.0.0.0/30")


def test_timings_can_be_set_to_k3s_real_values():
    spec = _spec([E0], timings={"node_status_update": 10,
                                "node_monitor_grace": 40,
                                "endpoint_ttl": 15})
    assert spec.timings.node_monitor_grace == 40.0
    assert spec.timings.lb_health_interval == 1.0


def test_lab_releases_prints_the_same_pair_apart():
    from click.testing import CliRunner

    from chaosk3s.cli import main
    result = CliRunner().invoke(main, ["lab", "releases"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split()[1]
             for line in result.output.splitlines()[1:-1]}
    assert lines["v1.28.12-v1.28.15"] == BUGGY
    assert lines["v1.28.15+k3s-2d0661e3"] == FIX1
    assert len(lines) == len(release_table())


@pytest.mark.parametrize(("value", "ssh", "sudo"), [
    (True, True, False), (False, False, False), ("sudo", True, True)])
def test_ssh_as_root_or_as_an_operator_with_sudo(value, ssh, sudo):
    spec = _spec([E0], ssh=value)
    assert (spec.ssh, spec.ssh_sudo) == (ssh, sudo)
    again = parse_spec(spec_to_dict(spec))  # as lab.json keeps it
    assert (again.ssh, again.ssh_sudo) == (ssh, sudo)


def test_ssh_takes_true_false_or_sudo_only():
    with pytest.raises(SpecError, match="ssh 'yes'.*sudo"):
        _spec([E0], ssh="yes")


def test_dual_stack_gives_every_node_the_same_host_number_in_ipv6():
    spec = dual_stack(default_spec())
    assert spec.subnet6 == "fd13:11::/64" and spec.host_address6 == \
        "fd13:11::1"
    assert [n.address6 for n in spec.nodes][:2] == ["fd13:11::a",
                                                    "fd13:11::b"]
    assert spec.node("agent-0").addresses == ("10.213.11.14", "fd13:11::e")
    again = parse_spec(spec_to_dict(spec))  # what lab.json keeps
    assert again.nodes == spec.nodes and again.subnet6 == spec.subnet6
    assert default_spec().node("agent-0").addresses == ("10.213.11.14",)


@pytest.mark.parametrize("subnet6,message", [
    ("10.0.0.0/24", "not an IPv6 network"),
    ("fd00::1/64", "not an IPv6 network"),
    ("fd00::/124", "too small")])
def test_a_bad_subnet6_is_refused(subnet6, message):
    with pytest.raises(SpecError, match=message):
        parse_spec({"subnet6": subnet6, "nodes": [
            {"name": "server-etcd-0", "role": "etcd"}]})
