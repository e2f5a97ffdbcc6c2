"""`chaosk3s abort` on the lab: a running experiment heals and stops
within 5 s, its journal says who aborted it, and the run leaves its
record as Events on the nodes it faulted."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaosk3s.lab.state import LabState
from tests.conftest import run_cli
from tests.lab.k3s_helpers import wait_for
from tests.lab.test_extension import _experiment, chaosk3s_rules

pytestmark = pytest.mark.lab
KUBECTL = str(Path(sys.executable).parent / "kubectl")
ABORT_WITHIN = 5.0  # seconds, issue 13


def _events(run_id: str) -> list[dict]:
    done = subprocess.run(
        [KUBECTL, "--kubeconfig", str(LabState().kubeconfig), "get",
         "events", "-n", "default", "-l", f"chaosk3s.io/run={run_id}",
         "-o", "json"], capture_output=True, text=True, check=True,
        timeout=30)
    return json.loads(done.stdout)["items"]


def test_abort_heals_and_stops_a_running_experiment_within_5s(lab,
                                                              tmp_path):
    chaos = Path(sys.executable).parent / "chaos"
    run = subprocess.Popen(
        # cut the agents from the control plane, then hold for 90 s: only
        # an abort ends it early
        [str(chaos), "run", str(_experiment(tmp_path, hold=90, ttl=300))],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=os.environ.copy())
    try:
        wait_for(lambda: set(chaosk3s_rules(lab)) == {"agent-0", "agent-1"},
                 60, "the partition to land", step=0.1)
        time.sleep(1)  # well inside the 90 s hold
        aborted = run_cli("abort", "--target", "lab", "--by", "tester",
                          "--reason", "pager went off")
        asked = time.monotonic()
        assert aborted.returncode == 0, aborted.stderr
        wait_for(lambda: not chaosk3s_rules(lab), ABORT_WITHIN,
                 "the partition to be healed", step=0.1)
        healed = time.monotonic() - asked
        run.wait(timeout=max(0.1, ABORT_WITHIN - healed))
        stopped = time.monotonic() - asked
    finally:
        run.kill()
        run.wait()
        assert run_cli("abort", "--clear", "--target",
                       "lab").returncode == 0
    print(f"abort: rules gone after {healed:.2f} s, chaos run ended "
          f"after {stopped:.2f} s")  # shown with pytest -s
    assert healed < ABORT_WITHIN and stopped < ABORT_WITHIN, (healed,
                                                              stopped)
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert run.returncode == 1
    assert journal["status"] == "interrupted"
    section = journal["chaosk3s"]
    assert section["aborted"]["by"] == "tester"
    assert section["aborted"]["reason"] == "pager went off"
    assert [f["ended_at"] is not None for f in section["faults"]] == [True]
    events = _events(section["run_id"])
    on_agent = sorted(e["reason"] for e in events
                      if e["involvedObject"]["name"] == "agent-0")
    assert on_agent == ["ChaosK3sFaultHealed", "ChaosK3sFaultInjected",
                        "ChaosK3sRunAborted"]
    verdict = next(e for e in events if e["reason"] == "ChaosK3sRunAborted")
    assert "by tester: pager went off" in verdict["message"]
