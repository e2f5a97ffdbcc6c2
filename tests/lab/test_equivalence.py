"""Verdict equivalence: the lab's compressed timings predict what K3s's
real ones give.

For etcd_only_partition (drop and reject) and node_restart, per release
family, the verdict of a run with the ``lab`` profile and the
experiment's defaults equals the verdict with the ``k3s`` profile (every
real K3s/Kubernetes period) and README's real-cluster variables
(tests/realcluster.py). Both runs go through `chaos run` as a user's do.

Slow (a k3s-profile run takes minutes): marked ``equivalence`` and left
out of the default run. `scripts/test-equivalence` runs all of it;
`scripts/test` runs its headline pair (drop on the affected and the
fixed 1.28 build; docs/benchmarks.md).
"""

import json
import time
from pathlib import Path

import pytest

from tests.lab.test_experiments import EXPERIMENTS, chaos_run
from tests.realcluster import REAL_CLUSTER

pytestmark = [pytest.mark.lab, pytest.mark.equivalence]

# One release per family, and the verdict the record expects of it.
FAMILIES = {"buggy": ("v1.28.15+k3s1", True),
            "fix1": ("v1.28.15+k3s-2d0661e3", False),
            "rework": ("v1.31.4+k3s1", False)}
SCENARIOS = [("etcd_only_partition", "drop"),
             ("etcd_only_partition", "reject"), ("node_restart", None)]
RUN_TIMEOUT = 900  # a k3s-profile run that waits out its recovery
WALL_TIMES: list[tuple[str, str, str, float, bool]] = []


def experiment_file(tmp_path: Path, experiment: str, mode: str | None
                    ) -> tuple[str, list[str]]:
    """The experiment to run and the variables that pick its mode: the
    `partition_mode` variable where the experiment declares it, else a
    copy of the experiment with the mode written in."""
    path = EXPERIMENTS / f"{experiment}.json"
    if mode is None:
        return str(path), []
    doc = json.loads(path.read_text())
    if "partition_mode" in doc["configuration"]:
        return str(path), [f"partition_mode={mode}"]
    for activity in doc["method"]:
        arguments = activity["provider"].get("arguments") or {}
        if "mode" in arguments:
            arguments["mode"] = mode
    copy = tmp_path / f"{experiment}-{mode}.json"
    copy.write_text(json.dumps(doc))
    return str(copy), []


def verdict(tmp_path: Path, experiment: str, mode: str | None,
            release: str, profile: str) -> bool:
    """Run; return whether it deviated (after checking it really ran)."""
    run_dir = tmp_path / profile
    run_dir.mkdir()
    path, variables = experiment_file(run_dir, experiment, mode)
    variables += [f"lab_k3s_version={release}", f"lab_timings={profile}"]
    if profile == "k3s":
        variables += [f"{key}:int={value}" for key, value
                      in REAL_CLUSTER[(experiment, mode)].items()]
    started = time.monotonic()
    result, journal = chaos_run(run_dir, path, *variables,
                                timeout=RUN_TIMEOUT)
    took = time.monotonic() - started
    WALL_TIMES.append((f"{experiment} {mode or ''}".strip(), release,
                       profile, took, journal["deviated"]))
    print(f"\n{experiment} {mode} {release} {profile}: "
          f"{'deviated' if journal['deviated'] else 'completed'} "
          f"in {took:.0f}s")
    assert journal["status"] == "completed", result.stderr[-3000:]
    assert result.returncode == (1 if journal["deviated"] else 0)
    assert journal["chaosk3s"]["k3s_versions"] == [release]
    logs = (run_dir / "lab" / "last-logs").glob("*/k3s.log")
    assert any(f", {profile} timings)" in log.read_text() for log in logs)
    return journal["deviated"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("experiment,mode", SCENARIOS,
                         ids=["partition-drop", "partition-reject",
                              "node-restart"])
def test_lab_verdict_predicts_the_k3s_verdict(tmp_path, experiment, mode,
                                              family):
    release, deviates = FAMILIES[family]
    on_lab = verdict(tmp_path, experiment, mode, release, "lab")
    with_k3s = verdict(tmp_path, experiment, mode, release, "k3s")
    assert on_lab == with_k3s == deviates, (on_lab, with_k3s)
