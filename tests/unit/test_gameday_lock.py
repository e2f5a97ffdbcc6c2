"""The game-day lock: the local file lock refusing a concurrent run, and
the Lease against the emulated API server (real HTTP, real etcd)."""

import json
from datetime import timedelta

import pytest

from chaosk3s.gameday.lock import (
    FileLock,
    LeaseLock,
    LockHeld,
    LockLost,
    lock_path,
    utc_now,
)
from chaosk3s.kube import Kube
from tests.unit.conftest import write_kubeconfig
from tests.unit.test_gameday_runner import (  # noqa: F401 - fixture
    OK_EXPERIMENT,
    private_state,
    run_cli,
    write_plan,
)


def test_file_lock_refuses_a_concurrent_run(tmp_path):
    marker = tmp_path / "ran"
    plan = write_plan(tmp_path, [(OK_EXPERIMENT, {"marker": str(marker)})])
    held = FileLock(lock_path("lab"))
    held.acquire("someone-else/42")
    try:
        done = run_cli("run", str(plan))
    finally:
        held.release()
    assert done.returncode == 2, done.stderr
    assert "holds the local lock" in done.stderr
    assert "someone-else/42" in done.stderr
    assert not marker.exists() and not (tmp_path / "reports").exists()
    # Released: the same plan runs.
    assert run_cli("run", str(plan)).returncode == 0
    assert marker.exists()


@pytest.fixture
def kube(api, tmp_path) -> Kube:
    return Kube(str(write_kubeconfig(tmp_path / "kubeconfig", api.url)),
                [None])


def test_lease_acquire_refuse_renew_release(kube):
    first = LeaseLock(kube, "runner-a", duration=60)
    first.acquire()
    spec = first.read()["spec"]
    assert spec["holderIdentity"] == "runner-a"
    assert spec["leaseDurationSeconds"] == 60
    second = LeaseLock(kube, "runner-b")
    with pytest.raises(LockHeld, match="runner-a"):
        second.acquire()
    before = first.read()["spec"]["renewTime"]
    first.clock = lambda: utc_now() + timedelta(seconds=5)
    first.renew()
    assert first.read()["spec"]["renewTime"] > before
    first.release()
    assert first.read()["spec"]["holderIdentity"] == ""
    second.acquire()  # free at once after a release
    assert second.read()["spec"]["holderIdentity"] == "runner-b"
    assert second.read()["spec"]["leaseTransitions"] == 1


def test_stale_lease_of_a_dead_runner_is_taken_over(kube):
    dead = LeaseLock(kube, "dead-runner", duration=30,
                     clock=lambda: utc_now() - timedelta(minutes=10))
    dead.acquire()  # renewed 10 min ago, for 30 s: long expired
    waits = []
    fresh = LeaseLock(kube, "fresh-runner", sleep=waits.append)
    fresh.acquire()
    assert waits == [30]  # unchanged for its whole duration: taken
    spec = fresh.read()["spec"]
    assert spec["holderIdentity"] == "fresh-runner"
    assert spec["leaseTransitions"] == 1
    with pytest.raises(LockLost, match="fresh-runner"):
        dead.renew()  # the dead runner, back, learns it lost the lock


def test_a_live_holder_whose_clock_is_behind_keeps_its_lease(kube):
    """Its renewTime looks 10 min old here, but it renews while we
    watch: refused, not taken over."""
    behind = LeaseLock(kube, "slow-clock", duration=60,
                       clock=lambda: utc_now() - timedelta(minutes=10))
    behind.acquire()
    messages = []
    other = LeaseLock(kube, "other", sleep=lambda _s: behind.renew(),
                      progress=messages.append)
    with pytest.raises(LockHeld, match="check that the clocks agree"):
        other.acquire()
    assert "looks expired" in messages[0]
    assert other.read()["spec"]["holderIdentity"] == "slow-clock"


def test_a_held_lease_refuses_a_game_day_before_anything_runs(kube,
                                                            tmp_path):
    holder = LeaseLock(kube, "other-machine/7/nightly/abc")
    holder.acquire()
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(json.dumps({"cluster": "unit-cluster",
                                     "kubeconfig": kube.kubeconfig,
                                     "nodes": []}))
    marker = tmp_path / "ran"
    plan = write_plan(tmp_path, [(OK_EXPERIMENT, {"marker": str(marker)})],
                      target="inventory.yaml")
    done = run_cli("run", str(plan))
    assert done.returncode == 2, done.stderr
    assert "other-machine/7/nightly/abc" in done.stderr
    assert "kube-system/chaosk3s-gameday" in done.stderr
    assert not marker.exists()
    holder.release()
    done = run_cli("run", str(plan))
    assert done.returncode == 0, done.stderr
    assert "holding the Lease" in done.stderr
    # Released at the end: free for the next game day.
    assert holder.read()["spec"]["holderIdentity"] == ""
