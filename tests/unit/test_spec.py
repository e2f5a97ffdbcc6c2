"""Lab spec validation: every bad spec is refused with a clear message."""

import pytest

from chaosk3s.errors import SpecError
from chaosk3s.lab.releases import BUGGY, FIX1, REWORK, parse_release
from chaosk3s.lab.spec import default_spec, parse_spec


def _spec(nodes, **extra):
    return parse_spec({"nodes": nodes, **extra})


def test_default_spec_is_the_11311_reproduction():
    spec = default_spec()
    assert [n.name for n in spec.nodes] == [
        "server-etcd-0", "server-etcd-1", "server-etcd-2", "server-cp-0",
        "agent-0", "agent-1"]
    assert all(n.server == "server-etcd-0" for n in spec.nodes[1:])
    assert spec.nodes[0].server is None
    assert spec.release.version == "v1.28.15+k3s1"
    assert spec.release.family == FIX1
    assert len({n.address for n in spec.nodes}) == 6


@pytest.mark.parametrize("version,family,bootstrap", [
    ("v1.28.14+k3s1", BUGGY, False), ("v1.28.15+k3s1", FIX1, False),
    ("v1.31.2+k3s1", BUGGY, False), ("v1.31.3+k3s1", FIX1, False),
    ("v1.31.4+k3s1", REWORK, False), ("v1.30.7+k3s1", FIX1, False),
    ("v1.29.12+k3s1", REWORK, False), ("v1.32.3+k3s1", REWORK, True),
    ("v1.31.6+k3s1", REWORK, False), ("v1.31.7+k3s1", REWORK, True),
])
def test_release_families(version, family, bootstrap):
    release = parse_release(version)
    assert (release.family, release.bootstrap_fix) == (family, bootstrap)


@pytest.mark.parametrize("version", ["v1.27.3+k3s1", "1.28.15", "latest",
                                     "v1.28.99+k3s1"])
def test_unknown_release_lists_the_known_ones(version):
    with pytest.raises(SpecError, match="unknown K3s release.*v1.28.0"):
        default_spec(version)


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
