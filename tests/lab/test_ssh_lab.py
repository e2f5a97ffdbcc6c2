"""The lab reached over SSH (`lab up --ssh`): faults and restarts travel
over real sshd in every node, and no secret leaks into journals or logs."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chaosk3s import actions, probes
from chaosk3s.lab.cluster import Lab
from chaosk3s.lab.spec import default_spec
from chaosk3s.lab.state import LabState
from chaosk3s.run import end_run
from chaosk3s.target import forget_targets
from tests.lab.conftest import assert_nothing_left, netns_exec

pytestmark = pytest.mark.lab

CONFIG = {"target": "lab"}
SECRET = "s3cr3t-token-value-4711"


@pytest.fixture(scope="module")
def ssh_lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("sshlab")
    os.environ["CHAOSK3S_STATE_DIR"] = str(root / "state")
    os.environ["CHAOSK3S_LEDGER_DIR"] = str(root / "ledger")
    lab = Lab(LabState(root / "state"))
    try:
        lab.up(dataclasses.replace(default_spec(), ssh=True))
        yield lab
    finally:
        forget_targets()
        end_run()
        lab.down()
        for key in ("CHAOSK3S_STATE_DIR", "CHAOSK3S_LEDGER_DIR"):
            os.environ.pop(key, None)
    assert_nothing_left(root / "state")


def test_inventory_uses_ssh(ssh_lab):
    inventory = yaml.safe_load(ssh_lab.state.inventory.read_text())
    assert {n["transport"]["type"] for n in inventory["nodes"]} == {"ssh"}


def test_partition_and_restart_over_ssh(ssh_lab):
    cp = ssh_lab.spec().node("server-cp-0").address
    fault = actions.partition_roles("at-risk", "control-plane", ttl=120,
                                    configuration=CONFIG)
    try:
        assert fault["nodes"] == ["agent-0", "agent-1", "server-etcd-1",
                                  "server-etcd-2"]
        rules = netns_exec("agent-0", "iptables", "-S").stdout
        assert f"-d {cp}/32" in rules and "CHAOSK3S" in rules
        # the management path stays open: a new SSH command still works
        assert len(probes.active_faults(CONFIG)) == 4
    finally:
        actions.heal_partitions(configuration=CONFIG)
    assert probes.active_faults(CONFIG) == []
    done = actions.restart_k3s("name:agent-0", configuration=CONFIG)
    assert done["nodes"][0]["node"] == "agent-0"
    result = probes.wait_for_nodes_ready(40, configuration=CONFIG)
    assert result["all_ready"], result


def test_no_secret_in_journal_ledger_or_logs(ssh_lab, tmp_path):
    key = Path(yaml.safe_load(ssh_lab.state.inventory.read_text())
               ["nodes"][0]["transport"]["key_file"]).read_text()
    key_body = key.splitlines()[1]  # a line of the private key itself
    experiment = tmp_path / "secret.json"
    experiment.write_text(json.dumps({
        "title": "secrets stay secret", "description": "test",
        "configuration": {"target": "lab"},
        "secrets": {"k8s": {"KUBERNETES_API_KEY": {
            "type": "env", "key": "CK3S_TEST_TOKEN"}}},
        "controls": [{"name": "chaosk3s", "provider": {
            "type": "python", "module": "chaosk3s.control"}}],
        "method": [
            {"type": "action", "name": "cut", "provider": {
                "type": "python", "module": "chaosk3s.actions",
                "func": "partition_roles", "arguments": {
                    "group": "name:agent-1", "peers": "control-plane",
                    "ttl": 60}}},
            {"type": "action", "name": "heal", "provider": {
                "type": "python", "module": "chaosk3s.actions",
                "func": "heal_partitions"}}]}))
    chaos = Path(sys.executable).parent / "chaos"
    result = subprocess.run(
        [str(chaos), "--verbose", "run", str(experiment)], cwd=tmp_path,
        capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "CK3S_TEST_TOKEN": SECRET})
    assert result.returncode == 0, result.stderr[-2000:]
    texts = {
        "journal": (tmp_path / "journal.json").read_text(),
        "chaostoolkit.log": (tmp_path / "chaostoolkit.log").read_text(),
        "output": result.stdout + result.stderr,
        "ledgers": "".join(p.read_text() for p in Path(
            os.environ["CHAOSK3S_LEDGER_DIR"]).glob("*.json")),
        "lab logs": "".join(p.read_text() for p in
                            ssh_lab.state.root.glob("nodes/*/logs/*.log")),
    }
    for name, text in texts.items():
        assert SECRET not in text, f"the token leaked into {name}"
        assert key_body not in text, f"the SSH key leaked into {name}"
