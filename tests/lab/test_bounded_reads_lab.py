"""An API that hangs at the steady-state check after the method, on the
lab: the control's fresh read of the nodes is bounded, the rollback
(here, the heal) starts within that bound, and the journal says the
nodes were judged on the readiness watch's view, and why.

control_plane_etcd_cut.json with its heal moved to the rollbacks: the
control plane is still cut off from etcd when the steady state is
checked after the method, so the API accepts connections and answers
nothing (docs/scenarios.md). The hypothesis asks etcd only, which the
cut leaves alone. tests/unit/test_bounded_reads.py has the same with a
socket that never answers; this is the real lab's API server.
"""

import json
from datetime import datetime
from pathlib import Path

import pytest

from chaosk3s.kube import BOUNDED_SECONDS
from tests.lab.test_experiments import (
    EXPERIMENTS,
    chaos_run,
    no_lab_up,  # noqa: F401 - the autouse fixture: no other lab is up
)

pytestmark = pytest.mark.lab
# seconds: the control's own work, chaoslib's, two labs' load (the old
# control took 40 s, so the test still tells them apart)
SLACK = 4.0


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _still_cut_at_the_check(tmp_path: Path) -> Path:
    experiment = json.loads((EXPERIMENTS / "control_plane_etcd_cut.json"
                             ).read_text())
    experiment["title"] = "The API hangs at the check after the method"
    hypothesis = experiment["steady-state-hypothesis"]
    hypothesis["probes"] = [p for p in hypothesis["probes"]
                            if p["name"] == "etcd-quorum-healthy"]
    experiment["method"] = [a for a in experiment["method"] if a["name"] in (
        "cut-control-plane-from-etcd", "api-unanswered-during-cut")]
    path = tmp_path / "still_cut_at_the_check.json"
    path.write_text(json.dumps(experiment))
    return path


def test_a_hung_api_at_the_check_holds_the_heal_only_the_bound(tmp_path):
    result, journal = chaos_run(tmp_path, str(_still_cut_at_the_check(
        tmp_path)), "partition_seconds=3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert journal["status"] == "completed" and not journal["deviated"]
    [cut, asked] = journal["run"]
    output = asked["output"]  # the API really hung during the method
    assert output["asked"] >= 1 and output["unanswered"] == output["asked"]
    [fault] = journal["chaosk3s"]["faults"]
    assert _at(fault["ended_at"]) > _at(asked["end"])  # healed by rollback
    checked = _at(journal["steady_states"]["after"]["probes"][-1]["end"])
    [heal] = journal["rollbacks"]
    assert heal["activity"]["name"] == "heal-partition"
    held = (_at(heal["start"]) - checked).total_seconds()
    assert BOUNDED_SECONDS - 0.5 <= held < BOUNDED_SECONDS + SLACK, held
    section = journal["chaosk3s"]
    assert (section["final_source"], section["api_reachable"]) == (
        "watch", False)
    assert section["final_error"].startswith(
        f"no fresh read within {BOUNDED_SECONDS:g}s"), section["final_error"]
    # the watch's view: the nodes as it last saw them, Ready
    assert all(n["recovered"] for n in section["nodes"].values())
