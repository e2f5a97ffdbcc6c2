"""`chaosk3s matrix` on real labs: the #11311 pair (the same Kubernetes
patch with and without the fix), each run a real `chaos run` with the
real chaosk3s control on a lab of its own, both at once when the
experiment declares `lab_name`. About a minute; in the lab tier."""

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from chaosk3s.lab import hostnet
from chaosk3s.namedlabs import LabNames
from tests.lab.conftest import assert_nothing_left, lab_names

# solo: two labs of its own on an 18 s cut and a 20 s recovery timeout;
# beside a parallel worker's lab, two cores could starve them into a
# false deviation.
pytestmark = [pytest.mark.lab, pytest.mark.solo]

PARTITION = Path(__file__).resolve().parents[2] / "experiments" / \
    "etcd_only_partition.json"
AFFECTED, FIXED = "v1.28.15+k3s1", "v1.28.15+k3s-2d0661e3"
AT_RISK = {"server-etcd-1", "server-etcd-2", "agent-0", "agent-1"}


def _longest_ended(section: dict) -> float | None:
    """The longest outage that ended, from the journal's nodes."""
    found = [o["outage_seconds"] for node in section["nodes"].values()
             for o in node["outages"] if o["ready_at"] is not None]
    return max(found, default=None)


def test_the_11311_pair_side_by_side(tmp_path):
    assert hostnet.list_lab_namespaces(lab_names()) == [], \
        "another lab is up"
    named = "lab_name" in json.loads(PARTITION.read_text())["configuration"]
    jobs = "2" if named else "1"  # one lab at a time until named labs
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "chaosk3s.cli", "matrix", str(PARTITION),
         "--releases", f"{AFFECTED},{FIXED}", "--jobs", jobs,
         "--expect", "buggy=deviated", "--var", "partition_seconds=18",
         "--var", "recovery_timeout=20", "--out", str(out)],
        capture_output=True, text=True, timeout=400, check=False,
        env={**os.environ, "CHAOSK3S_STATE_DIR": str(tmp_path / "state"),
             "CHAOSK3S_LEDGER_DIR": str(tmp_path / "ledger")})
    assert done.returncode == 0, done.stderr[-4000:]
    runs = json.loads((out / "matrix.json").read_text())["runs"]
    for run in runs:  # each run's own lab is gone, whatever its name
        assert_nothing_left(tmp_path / "state", LabNames(run["lab"]))
    assert [(r["release"], r["family"], r["verdict"]) for r in runs] == [
        (AFFECTED, "buggy", "deviated"), (FIXED, "fix1", "completed")]
    journals = [json.loads((out / r["journal"]).read_text()) for r in runs]
    for run, journal in zip(runs, journals, strict=True):
        section = journal["chaosk3s"]
        assert section["lab"]["release"] == run["release"]  # what ran
        assert section["k3s_versions"] == [run["release"]]
        assert sorted(run["nodes_not_recovered"]) == sorted(
            n for n, v in section["nodes"].items() if v["recovered"] is False)
        # the report measures from the timeline; the section rounds to ms
        assert run["longest_outage_seconds"] == pytest.approx(
            _longest_ended(section), abs=0.001)
        assert (out / run["report"]).is_file()
    assert set(runs[0]["nodes_not_recovered"]) == AT_RISK
    assert runs[1]["nodes_not_recovered"] == []
    assert runs[1]["longest_outage_seconds"] > 0  # the cut took them down
    if named:  # each on its own lab, at the same time
        assert len({r["lab"] for r in runs}) == 2
        spans = [(datetime.fromisoformat(j["start"]),
                  datetime.fromisoformat(j["end"])) for j in journals]
        assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]
    markdown = (out / "matrix.md").read_text()
    # as the report lists them: by role, then name
    lost = "server-etcd-1, server-etcd-2, agent-0, agent-1"
    assert f"| {AFFECTED} | buggy | deviated | {lost} | never ended (4 " \
        f"nodes) |" in markdown
