"""K3s #11311 and friends on the lab, per release family.

Each test brings up its own lab at one release, cuts links with iptables
inside the nodes' namespaces, heals, and asserts what that release does
according to docs/k3s-behaviour.md ("Load balancer").
"""

import time

import pytest

from chaosk3s import probes
from chaosk3s.lab.cluster import Lab
from chaosk3s.lab.spec import default_spec
from chaosk3s.target import forget_targets
from tests.lab.k3s_helpers import api, cut, heal, readiness, wait_for

pytestmark = pytest.mark.lab

AT_RISK = ["server-etcd-1", "server-etcd-2", "agent-0", "agent-1"]


def _up(version: str) -> tuple[Lab, object]:
    """A lab at version, and its spec as placed: a named lab (a parallel
    worker's) has a subnet of its own, not the default spec's."""
    lab = Lab()
    return lab, lab.up(default_spec(version))


def _partition_until_not_ready(lab: Lab, spec) -> object:
    """Cut server-cp-0 off from the at-risk nodes until they are NotReady."""
    core = api(lab.state)
    cp = spec.node("server-cp-0").address
    cut(AT_RISK, cp)
    grace = spec.timings.node_monitor_grace
    wait_for(lambda: all(readiness(core)[n] != "True" for n in AT_RISK),
             grace * 3, "at-risk nodes NotReady during the partition")
    return core


@pytest.mark.parametrize("version", ["v1.28.15+k3s-2d0661e3", "v1.31.4+k3s1"])
def test_fixed_releases_heal_after_the_partition(state_root, version):
    lab, spec = _up(version)
    core = _partition_until_not_ready(lab, spec)
    assert readiness(core)["server-etcd-0"] == "True"
    healed = time.monotonic()
    heal(AT_RISK)
    wait_for(lambda: set(readiness(core).values()) == {"True"},
             spec.timings.node_monitor_grace * 2,
             "every node Ready after the heal")
    assert time.monotonic() - healed < spec.timings.node_monitor_grace * 2


def test_buggy_release_stays_not_ready_until_restarted(state_root):
    forget_targets()  # a new lab: no cached target of an earlier one
    lab, spec = _up("v1.28.15+k3s1")
    core = _partition_until_not_ready(lab, spec)
    heal(AT_RISK)
    time.sleep(spec.timings.node_monitor_grace * 3)
    ready = readiness(core)
    assert [n for n in AT_RISK if ready[n] == "True"] == []
    assert ready["server-etcd-0"] == ready["server-cp-0"] == "True"
    log = lab.state.log("agent-0", "k3s").read_text()
    assert "apiserver disabled" in log
    # The extension's probe sees why: connections held to server-etcd-0.
    assert probes.nodes_pinned_to_etcd_only({"target": "lab"}) == sorted(
        AT_RISK)
    # B6: restarting k3s on a stuck node recovers it from its saved list.
    lab.restart_node("agent-0", "k3s")
    wait_for(lambda: readiness(core)["agent-0"] == "True",
             spec.timings.node_monitor_grace * 2, "agent-0 Ready again")
    assert readiness(core)["agent-1"] != "True"
