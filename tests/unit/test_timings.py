"""Timing profiles: parsing, and the orderings that decide verdicts.

Each ordering is stated in docs/k3s-behaviour.md ("Orderings"); here it is
checked for the ``k3s`` profile with README's real-cluster variables and
for the ``lab`` profile with the experiments' defaults.
"""

import json
import re
from pathlib import Path

import pytest

from chaosk3s.errors import SpecError
from chaosk3s.lab.spec import load_spec
from chaosk3s.lab.timings import K3S, Timings, profile_timings
from chaosk3s.lab_control import lab_timings, wanted_spec
from tests.realcluster import REAL_CLUSTER, SYN_RETRY_GAP

ROOT = Path(__file__).resolve().parents[2]


def lab_defaults(experiment: str) -> dict:
    config = json.loads((ROOT / "experiments" / f"{experiment}.json")
                        .read_text())["configuration"]
    return {k: (v["default"] if isinstance(v, dict) and "default" in v
                else v) for k, v in config.items()}


def test_profiles_from_a_spec():
    assert load_spec(None).timings == Timings()
    assert load_spec(None).timings.profile == "lab"
    k3s = load_spec(None, timings="k3s").timings
    assert k3s == K3S and k3s.tunnel_dead_after == 60
    assert k3s.tunnel_dial_timeout == 0  # no timeout: the kernel's
    mixed = load_spec(None, timings={"profile": "k3s",
                                     "tunnel_dead_after": 30}).timings
    assert mixed.profile == "k3s" and mixed.tunnel_dead_after == 30
    assert mixed.node_monitor_grace == 40
    assert load_spec(None, timings={"startup": 1}).timings.profile == "lab"


def test_k3s_grace_follows_the_kubernetes_minor():
    assert load_spec(None, "v1.31.4+k3s1", "k3s").timings \
        .node_monitor_grace == 40
    assert load_spec(None, "v1.32.3+k3s1", "k3s").timings \
        .node_monitor_grace == 50
    assert profile_timings("lab", 32).node_monitor_grace == 10


@pytest.mark.parametrize("raw,message", [
    ("fast", "unknown timings profile 'fast'; profiles: lab, k3s"),
    ({"profile": "real"}, "unknown timings profile 'real'"),
    ({"tunnel_heartbeat": 1}, "unknown timing.*tunnel_heartbeat.*known"),
    ({"startup": "3"}, "timing startup must be a positive number"),
    ({"startup": 0}, "timing startup must be a positive number"),
    ({"tunnel_dial_timeout": -1}, "tunnel_dial_timeout must be a positive"),
    ({"startup": True}, "timing startup must be a positive number"),
    (["k3s"], "timings must be a profile"),
])
def test_bad_timings_are_refused(raw, message):
    with pytest.raises(SpecError, match=message):
        load_spec(None, timings=raw)


def test_experiment_variable_forms():
    assert lab_timings({"lab_timings": "k3s"}) == "k3s"
    assert lab_timings({"lab_timings": " "}) is None
    assert lab_timings({}) is None
    assert lab_timings({"lab_timings": '{"profile": "k3s", "startup": 5}'}
                       ) == {"profile": "k3s", "startup": 5}
    spec = wanted_spec({"lab_timings": '{"profile": "k3s", "startup": 5}',
                        "lab_k3s_version": "v1.28.15+k3s1"})
    assert spec.timings.startup == 5 and spec.timings.profile == "k3s"
    with pytest.raises(SpecError, match="lab_timings is not valid JSON"):
        lab_timings({"lab_timings": "{profile: k3s"})
    with pytest.raises(SpecError, match="unknown timings profile"):
        wanted_spec({"lab_timings": "real"})


def test_every_experiment_declares_lab_timings():
    for path in sorted((ROOT / "experiments").glob("*.json")):
        assert lab_defaults(path.stem)["lab_timings"] == "lab", path.name


# -- the orderings ------------------------------------------------------------

def redial_gap(t: Timings) -> float:
    """After a drop heals, how long until the tunnel's next dial gets
    through: the dial timeout, or without one the kernel's SYN backoff."""
    dial = t.tunnel_dial_timeout or SYN_RETRY_GAP
    return dial + t.tunnel_reconnect


def fallback(t: Timings, mode: str) -> float:
    """Partition start to a pre-fix LB sending the kubelet to its default:
    the tunnel is dropped (read deadline for drop; next ping's reset for
    reject), the health loop notices, the kubelet dials again."""
    lost = t.tunnel_dead_after if mode == "drop" else t.tunnel_ping_interval
    return lost + t.lb_health_interval + t.status_update_timeout


def not_ready(t: Timings) -> float:
    """A node whose kubelet stopped posting at t0 shows NotReady by then."""
    return t.node_monitor_grace + t.node_monitor_period


def recovery(t: Timings, mode: str) -> float:
    """Heal to Ready for a fixed release: tunnel back, health tick, the
    kubelet's next status update (and one timed-out try)."""
    back = redial_gap(t) if mode == "drop" else t.tunnel_reconnect
    return (back + t.lb_health_interval + t.node_status_update
            + t.status_update_timeout)


def cases():
    for (experiment, mode), real in REAL_CLUSTER.items():
        yield pytest.param(K3S, experiment, mode, real,
                           id=f"k3s-{experiment}-{mode}")
        yield pytest.param(Timings(), experiment, mode,
                           lab_defaults(experiment),
                           id=f"lab-{experiment}-{mode}")


@pytest.mark.parametrize("t,experiment,mode,v", list(cases()))
def test_orderings_that_decide_verdicts_hold(t, experiment, mode, v):
    # A silent peer misses several pings before it is dropped.
    assert 2 * t.tunnel_ping_interval < t.tunnel_dead_after
    # One slow status update does not turn a node NotReady.
    assert 2 * t.node_status_update < t.node_monitor_grace
    assert t.endpoint_reconcile < t.endpoint_ttl
    if experiment == "etcd_only_partition":
        # The LB falls back before the heal, and the stuck node is
        # NotReady before it, or the affected release passes falsely.
        assert fallback(t, mode) < v["partition_seconds"]
        assert not_ready(t) < v["partition_seconds"]
        # A fixed release is Ready again before the verdict is taken.
        assert recovery(t, mode) < v["recovery_timeout"]
    else:
        # A node left stuck has turned NotReady before the final check.
        assert not_ready(t) < v["observe_seconds"]
        assert recovery(t, "reject") < v["recovery_timeout"]
    if experiment == "control_plane_outage":
        # The first server's endpoint lease expires, the survivor drops
        # it and the watch's debounce passes before the second stops.
        assert (t.endpoint_ttl + t.endpoint_reconcile + t.endpoint_debounce
                < v["first_outage_seconds"])


def test_readme_states_the_real_cluster_values():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("**Real timings.**", 1)[1].split("\n\n**", 1)[0]
    for (experiment, mode), real in REAL_CLUSTER.items():
        for key, value in real.items():
            pattern = rf"`{key}(?::int)?={value}`"
            assert re.search(pattern, section), (experiment, mode, key)
