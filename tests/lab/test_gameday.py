"""Game days on the lab: a plan run end to end (journals, reports, index),
and the Lease lock in the lab's API refusing a concurrent run and taken
over when stale.
"""

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from chaosk3s.gameday.lock import LeaseLock, utc_now
from chaosk3s.inventory import load_target
from chaosk3s.kube import Kube
from chaosk3s.lab import hostnet
from tests.lab.conftest import assert_nothing_left, lab_names

pytestmark = pytest.mark.lab

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


@pytest.fixture
def private_dirs(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CHAOSK3S_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setenv("CHAOSK3S_LEDGER_DIR", str(tmp_path / "ledger"))
    return tmp_path


def write_plan(directory: Path, experiments: list[dict]) -> Path:
    plan = {"name": "lab-gameday", "target": "lab",
            "experiments": [{**e, "path": str(EXPERIMENTS / e["path"])}
                            for e in experiments],
            "schedule": {"cron": "0 10 * * 2", "timezone": "Europe/Berlin"},
            "report_dir": "reports", "stop_on_deviation": True}
    path = directory / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def gameday(plan: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chaosk3s.gameday.cli", "run", *options,
         str(plan)],
        capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ))


def lab_kube() -> Kube:
    inventory = load_target("lab")
    return Kube(inventory.kubeconfig, list(inventory.contexts))


# First: the module's default_lab is up from the next test to the end.
def test_plan_run_with_the_lab_started_by_the_experiments(private_dirs,
                                                          monkeypatch):
    """No lab up: each experiment's control brings one up and down."""
    assert hostnet.list_lab_namespaces(lab_names()) == [], \
        "another lab is up"
    monkeypatch.setenv("CHAOSK3S_STATE_DIR", str(private_dirs / "state"))
    plan = write_plan(private_dirs, [{"path": "node_restart.json"}])
    done = gameday(plan)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no lab is up" in done.stderr
    assert "1 completed (exit 0)" in done.stdout
    run_dir = next((private_dirs / "reports" / "lab-gameday").iterdir())
    summary = json.loads((run_dir / "gameday.json").read_text())
    assert summary["experiments"][0]["status"] == "completed"
    assert (run_dir / "01-node_restart.html").exists()
    assert (private_dirs / "reports" / "index.html").exists()
    assert_nothing_left(private_dirs / "state")


def test_lease_in_the_lab_refuses_then_stale_is_taken_over(
        private_dirs, default_lab):
    plan = write_plan(private_dirs, [{"path": "etcd_only_partition.json",
                                      "vars": {"partition_seconds": 15}}])
    other = LeaseLock(lab_kube(), "other-host/99/nightly/x", duration=60)
    other.acquire()
    refused = gameday(plan)
    assert refused.returncode == 2, refused.stderr
    assert "other-host/99/nightly/x" in refused.stderr
    assert not (private_dirs / "reports").exists()
    # The other runner died 10 min ago: its lease is stale (and stays
    # unchanged for its 5 s, which the taker waits out).
    stale = LeaseLock(lab_kube(), "other-host/99/nightly/x", duration=5,
                      clock=lambda: utc_now() - timedelta(minutes=10))
    stale.acquire()
    # the summary ConfigMap, made as the CronJob export makes it
    lab_kube().call("create_namespaced_config_map", namespace="default",
                    body={"metadata": {"name": "gameday-summary"}})
    done = gameday(plan, "--summary-configmap", "default/gameday-summary")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "looks expired" in done.stderr
    assert "holding the Lease kube-system/chaosk3s-gameday" in done.stderr
    spec = other.read()["spec"]
    assert spec["holderIdentity"] == ""  # released at the end
    assert spec["leaseTransitions"] == 1
    run_dir = next((private_dirs / "reports" / "lab-gameday").iterdir())
    journal = json.loads((run_dir / "01-etcd_only_partition.json"
                          ).read_text())
    assert journal["status"] == "completed" and not journal["deviated"]
    assert "chaosk3s" in journal
    assert (run_dir / "01-etcd_only_partition.html").exists()
    index = (private_dirs / "reports" / "index.html").read_text()
    assert "01-etcd_only_partition.html" in index
    # the game day's summary, written by the runner into the lab's API
    data = lab_kube().call("read_namespaced_config_map",
                           namespace="default", name="gameday-summary")[
        "data"]
    latest = json.loads(data["latest.json"])
    assert latest["verdict"] == "completed" and latest["exit_code"] == 0
    assert [e["status"] for e in latest["experiments"]] == ["completed"]
    assert sorted(data) == ["latest.json", f"run-{run_dir.name}.json"]
    assert "summary: ConfigMap default/gameday-summary (completed)" in \
        done.stderr
