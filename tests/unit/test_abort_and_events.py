"""The abort watch and the run's Events, against the emulated API server
(real etcd, real HTTP; Events read back with kubectl)."""

import json
import subprocess
import threading
import time
from datetime import UTC, datetime

import pytest

from chaosk3s import consent
from chaosk3s.abort import AbortWatch
from chaosk3s.events import EventRecorder
from chaosk3s.kube import Kube
from chaosk3s.report import load_journal, render_journal
from chaosk3s.report.samples import lab_journal
from tests.unit.conftest import KUBECTL, free_port, write_kubeconfig


@pytest.fixture
def kube(api, tmp_path) -> Kube:
    return Kube(str(write_kubeconfig(tmp_path / "kubeconfig", api.url)),
                ["lab"])


def _watch(kube: Kube, cluster: str = "prod"):
    seen: list[dict] = []
    called = threading.Event()

    def on_abort(info: dict) -> None:
        seen.append(info)
        called.set()

    return AbortWatch(kube, cluster, on_abort, interval=0.2).start(), \
        seen, called


def test_setting_the_switch_is_seen_within_a_poll(kube):
    consent.grant(kube, "prod")
    watch, seen, called = _watch(kube)
    try:
        time.sleep(0.5)
        assert not called.is_set()  # consent alone is no abort
        set_at = time.monotonic()
        consent.set_abort(kube, "bob@pager", "pager went off")
        assert called.wait(5)
        assert time.monotonic() - set_at < 2
    finally:
        watch.stop()
    assert len(seen) == 1
    assert (seen[0]["by"], seen[0]["reason"]) == ("bob@pager",
                                                  "pager went off")
    assert seen[0]["seen_at"]


def test_withdrawn_or_reassigned_consent_aborts_too(kube):
    consent.grant(kube, "prod")
    watch, seen, called = _watch(kube)
    try:
        consent.withdraw(kube)
        assert called.wait(5)
    finally:
        watch.stop()
    assert "was withdrawn" in seen[0]["reason"]
    consent.grant(kube, "staging")
    watch, seen, called = _watch(kube)
    try:
        assert called.wait(5)
    finally:
        watch.stop()
    assert "names cluster 'staging', not 'prod'" in seen[0]["reason"]


def test_an_api_that_does_not_answer_is_no_abort(tmp_path):
    dead = Kube(str(write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:"
                                     f"{free_port()}")), ["lab"])
    watch, _seen, called = _watch(dead)
    try:
        assert not called.wait(1.5)
    finally:
        watch.stop()


LEDGER = [
    {"id": "r1", "kind": "partition", "nodes": ["agent-0", "agent-1"],
     "description": "drop both between agent-0, agent-1 and server-cp-0",
     "started_at": "2026-01-07T10:00:00.123456+00:00", "ended_at": None},
]


def _events(kubeconfig: str, *selector: str) -> list[dict]:
    done = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "get",
                           "events", "-n", "default", *selector, "-o",
                           "json"], capture_output=True, text=True,
                          check=True, timeout=30)
    return json.loads(done.stdout)["items"]


def test_a_runs_faults_and_verdict_are_events_on_its_nodes(kube):
    recorder = EventRecorder(kube, "0107aa").start()
    recorder.faults_changed(LEDGER)
    recorder.faults_changed(LEDGER)  # seen once, posted once
    ended = [{**LEDGER[0], "ended_at": "2026-01-07T10:00:20+00:00",
              "healed_by": "heal_partitions"}]
    recorder.faults_changed(ended)
    recorder.run_ended("split", {"status": "completed", "deviated": True,
                                 "end": "2026-01-07T10:01:00+00:00"})
    assert recorder.flush(10) == []
    # as `kubectl describe node agent-0` searches for them
    mine = _events(kube.kubeconfig, "--field-selector",
                   "involvedObject.kind=Node,involvedObject.name=agent-0,"
                   "involvedObject.uid=agent-0")
    assert [(e["reason"], e["type"]) for e in sorted(
        mine, key=lambda e: (e["lastTimestamp"], e["metadata"]["name"]))
    ] == [("ChaosK3sFaultInjected", "Warning"),
          ("ChaosK3sFaultHealed", "Normal"),
          ("ChaosK3sRunDeviated", "Warning")]
    assert datetime.fromisoformat(mine[0]["firstTimestamp"]) == \
        datetime(2026, 1, 7, 10, 0, tzinfo=UTC)  # the fault's own time
    assert "fault r1 (partition): drop both" in mine[0]["message"]
    assert all(e["source"]["component"] == "chaosk3s" for e in mine)
    by_run = _events(kube.kubeconfig, "-l", "chaosk3s.io/run=0107aa")
    assert len(by_run) == 6  # three on each of the two nodes


def test_an_aborted_run_says_who_aborted_it(kube):
    recorder = EventRecorder(kube, "0107bb").start()
    recorder.faults_changed(LEDGER)
    recorder.run_ended("split", {"status": "interrupted"}, aborted={
        "by": "bob@pager", "reason": "pager went off"})
    assert recorder.flush(10) == []
    verdicts = [e for e in _events(kube.kubeconfig, "-l",
                                   "chaosk3s.io/run=0107bb")
                if e["reason"].startswith("ChaosK3sRun")]
    assert {e["reason"] for e in verdicts} == {"ChaosK3sRunAborted"}
    assert "abort switch (by bob@pager: pager went off)" in \
        verdicts[0]["message"]


def test_events_never_hold_a_run_when_the_api_is_away(tmp_path):
    dead = Kube(str(write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:"
                                     f"{free_port()}")), ["lab"])
    recorder = EventRecorder(dead, "0107cc").start()
    started = time.monotonic()
    recorder.faults_changed(LEDGER)  # returns at once: queued
    assert time.monotonic() - started < 0.5
    left = recorder.flush(1.5)
    assert time.monotonic() - started < 5
    assert [e["involvedObject"]["name"] for e in left] == ["agent-0",
                                                           "agent-1"]


def test_the_report_says_who_aborted_the_run(tmp_path):
    journal = lab_journal(agents=2, activities=3)
    journal["status"] = "interrupted"
    journal["chaosk3s"]["aborted"] = {
        "by": "bob@pager", "at": "2026-01-07T10:00:05+00:00",
        "reason": "pager went off", "seen_at": "2026-01-07T10:00:06+00:00"}
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(journal, default=str))
    loaded = load_journal(path)
    assert loaded.verdict.kind == "interrupted"
    assert loaded.verdict.reason.startswith(
        "The cluster's abort switch stopped the run (set by bob@pager at "
        "2026-01-07T10:00:05+00:00: pager went off)")
    page = render_journal(path, tmp_path / "out").read_text()
    assert "abort switch stopped the run (set by bob@pager" in page
