"""Cleanup with one node unreachable, on a lab reached over SSH: the
node's link goes down, `chaosk3s cleanup` heals every other node and
reports that one (exit 1); once the link is back, a second cleanup heals
it too. (Issue 12, item 8; over netns a node cannot be unreachable.)"""

import dataclasses

import pytest

from chaosk3s import actions, probes
from chaosk3s.lab import hostnet
from chaosk3s.lab.spec import default_spec
from chaosk3s.run import end_run
from chaosk3s.target import forget_targets
from tests.conftest import run_cli
from tests.lab.conftest import lab_names, netns_exec, private_lab
from tests.lab.k3s_helpers import wait_for
from tests.lab.test_reliability import open_ledger_entries, timer_processes

pytestmark = pytest.mark.lab
CONFIG = {"target": "lab"}


@pytest.fixture(scope="module")
def ssh_lab(tmp_path_factory):
    with private_lab(tmp_path_factory.mktemp("relssh"), dataclasses.replace(
            default_spec(), ssh=True)) as lab:
        yield lab


def chaosk3s_rules(node: str) -> list[str]:
    return [r for r in netns_exec(node, "iptables", "-S").stdout
            .splitlines() if "CHAOSK3S" in r]


def test_cleanup_heals_the_rest_and_reports_the_unreachable_node(ssh_lab):
    actions.partition_roles("agent", "control-plane", ttl=300,
                            configuration=CONFIG)
    actions.stop_k3s("name:server-etcd-2", configuration=CONFIG)
    end_run()  # the runner is gone; its ledger stays
    forget_targets()
    hostnet.set_node_link(lab_names(), "agent-1", up=False)
    try:
        first = run_cli("cleanup", timeout=300)
    finally:
        hostnet.set_node_link(lab_names(), "agent-1", up=True)
    assert first.returncode == 1, first.stdout + first.stderr
    still = [line for line in first.stdout.splitlines()
             if line.startswith("STILL OPEN")]
    assert still and all("agent-1" in line for line in still), still
    assert chaosk3s_rules("agent-0") == []  # healed despite agent-1
    assert chaosk3s_rules("agent-1")  # untouched: it was unreachable
    assert probes.etcd_quorum_healthy(CONFIG)  # server-etcd-2 started
    assert [e["open_nodes"] for e in open_ledger_entries()] == [
        ["agent-1"]]
    second = run_cli("cleanup", timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "none remain" in second.stdout
    assert chaosk3s_rules("agent-1") == [] and open_ledger_entries() == []
    assert timer_processes() == []
    wait_for(lambda: probes.all_nodes_ready(configuration=CONFIG), 60,
             "every node Ready")
