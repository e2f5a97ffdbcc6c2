"""Consent on the lab: the lab consents by itself, and a run against a
lab whose consent was withdrawn, or whose abort switch is set, is refused
before the steady state with nothing changed on any node."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chaosk3s.lab.state import LabState
from tests.conftest import run_cli
from tests.lab.conftest import lab_names
from tests.lab.test_extension import all_rules, lab_pids

pytestmark = pytest.mark.lab
EXPERIMENT = Path(__file__).resolve().parents[2] / "experiments" / \
    "etcd_only_partition.json"
KUBECTL = str(Path(sys.executable).parent / "kubectl")



def _kubectl(*argv: str) -> str:
    return subprocess.run([KUBECTL, "--kubeconfig",
                           str(LabState().kubeconfig), *argv],
                          capture_output=True, text=True, check=True,
                          timeout=30).stdout


def _run(tmp_path: Path, lab) -> tuple[subprocess.CompletedProcess, dict]:
    chaos = Path(sys.executable).parent / "chaos"
    done = subprocess.run(
        [str(chaos), "run", "--var",
         f"lab_k3s_version={lab.spec().release.version}", str(EXPERIMENT)],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
        check=False, env=os.environ.copy())
    return done, json.loads((tmp_path / "journal.json").read_text())


def test_the_lab_consents_by_itself(lab):
    uid = _kubectl("get", "namespace", "kube-system", "-o",
                   "jsonpath={.metadata.uid}")
    inventory = yaml.safe_load(LabState().inventory.read_text())
    assert inventory["cluster_uid"] == uid
    record = json.loads(_kubectl("get", "configmap", "-n", "kube-system",
                                 "chaosk3s-consent", "-o", "json"))
    assert record["data"]["cluster"] == inventory["cluster"]
    assert record["data"]["uid"] == uid
    status = run_cli("consent", "--status", "--target", "lab")
    assert status.returncode == 0, status.stderr
    assert "granted by chaosk3s lab up" in status.stdout


@pytest.mark.parametrize(("change", "undo", "says"), [
    (("consent", "--withdraw"), ("consent",),
     "has not consented to chaos (no ConfigMap "
     "kube-system/chaosk3s-consent)"),
    (("abort", "--reason", "maintenance", "--by", "ops"),
     ("abort", "--clear"),
     "abort switch of cluster '{cluster}' is set (by ops at "),
], ids=["withdrawn", "aborted"])  # the same ids on every xdist worker
def test_a_lab_that_does_not_consent_refuses_before_the_steady_state(
        lab, tmp_path, change, undo, says):
    before, pids = all_rules(lab), lab_pids(lab)
    assert run_cli(*change, "--target", "lab").returncode == 0
    try:
        result, journal = _run(tmp_path, lab)
    finally:
        assert run_cli(*undo, "--target", "lab").returncode == 0
    assert result.returncode == 1
    assert says.format(cluster=lab_names().cluster) in \
        journal["chaosk3s"]["refused"], journal["chaosk3s"]
    assert journal["steady_states"]["before"] is None
    assert journal["run"] == [] and not journal.get("rollbacks")
    assert all_rules(lab) == before and lab_pids(lab) == pids
    assert run_cli("consent", "--status", "--target",
                   "lab").returncode == 0  # as it was
