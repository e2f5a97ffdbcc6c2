"""The experiments' verdicts on the lab: true negatives and positives.

Each runs `chaos run` exactly as a user does, from a clean machine state
(no lab up): the chaosk3s control brings the lab up and down itself.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chaosk3s.lab import hostnet
from tests.lab.conftest import assert_nothing_left

pytestmark = pytest.mark.lab

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
AT_RISK = {"server-etcd-1", "server-etcd-2", "agent-0", "agent-1"}


def chaos_run(tmp_path: Path, experiment: str, *variables: str
              ) -> tuple[subprocess.CompletedProcess, dict]:
    chaos = Path(sys.executable).parent / "chaos"
    argv = [str(chaos), "run"]
    for variable in variables:
        argv += ["--var", variable]
    argv.append(str(EXPERIMENTS / experiment))
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, check=False,
                            env={**os.environ,
                                 "CHAOSK3S_STATE_DIR": str(tmp_path / "lab"),
                                 "CHAOSK3S_LEDGER_DIR":
                                     str(tmp_path / "ledger")})
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert_nothing_left(tmp_path / "lab")
    return result, journal


@pytest.fixture(autouse=True)
def no_lab_up():
    assert hostnet.list_lab_namespaces() == [], "another lab is up"


def test_fixed_release_heals(tmp_path):
    result, journal = chaos_run(tmp_path, "etcd_only_partition.json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert journal["status"] == "completed" and not journal["deviated"]
    nodes = journal["chaosk3s"]["nodes"]
    assert {n for n, v in nodes.items() if v["at_risk"]} == AT_RISK
    assert all(v["recovered"] for v in nodes.values())
    for name in AT_RISK:  # the partition really took them down
        assert nodes[name]["not_ready_at"] is not None
        assert nodes[name]["recovery_seconds"] < 20
    assert journal["chaosk3s"]["k3s_versions"] == ["v1.28.15+k3s1"]


def test_buggy_release_deviates_on_exactly_the_at_risk_nodes(tmp_path):
    result, journal = chaos_run(tmp_path, "etcd_only_partition.json",
                                "lab_k3s_version=v1.28.14+k3s1")
    assert result.returncode == 1
    assert journal["status"] == "completed" and journal["deviated"]
    nodes = journal["chaosk3s"]["nodes"]
    assert {n for n, v in nodes.items() if not v["recovered"]} == AT_RISK
    assert {n for n, v in nodes.items() if v["at_risk"]} == AT_RISK
    faults = journal["chaosk3s"]["faults"]
    assert faults and all(f["ended_at"] for f in faults)
