"""The maintenance form of node_restart on the lab, watched from outside.

`chaos run experiments/node_restart_maintenance.json` runs as a user
runs it, against a lab this module brings up (so pods can be put on the
agents first: the lab runs no workloads, its pods are API records). A
watcher thread reads what the run does not report itself: every node's
spec.unschedulable, taints and Ready condition through the kubernetes
client, and each agent's k3s MainPID from /proc (chaosk3s.lab.nodectl),
five times a second.
"""

import html
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from kubernetes import client, config, watch

from chaosk3s.lab.nodectl import show
from tests.lab.conftest import lab_names
from tests.unit.test_apiserver_drain import pod

pytestmark = pytest.mark.lab

EXPERIMENT = Path(__file__).resolve().parents[2] / "experiments" / \
    "node_restart_maintenance.json"
AGENTS = ("agent-0", "agent-1")
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"


@dataclass(frozen=True)
class Sample:
    round: int  # one node listing: the samples of a round are one moment
    node: str
    cordoned: bool
    tainted: bool
    ready: bool
    pid: int


class Watcher:
    """Samples every node (API) and each agent's k3s MainPID (/proc);
    and, through a watch of the nodes, every change of a node's
    spec.unschedulable, however short (`cordons`: (node, cordoned) in
    the order the API made them)."""

    def __init__(self, lab, v1: client.CoreV1Api):
        self.lab, self.v1 = lab, v1
        self.samples: list[Sample] = []
        self.cordons: list[tuple[str, bool]] = []
        self.broken: Exception | None = None  # the watch, before the end
        self._stop = threading.Event()
        self._watch = watch.Watch()
        self._threads = [threading.Thread(target=self._run, daemon=True),
                         threading.Thread(target=self._follow, daemon=True,
                                          args=(v1.list_node()
                                                .metadata.resource_version,))]

    def __enter__(self) -> "Watcher":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._watch.stop()  # at its next event: kubelets post every 1 s
        for thread in self._threads:
            thread.join(timeout=10)
        if exc[0] is None:
            assert self.broken is None, f"the node watch broke: {self.broken}"

    def _follow(self, version: str) -> None:
        try:
            self._events(version)
        except Exception as exc:  # noqa: BLE001 - reported by __exit__
            if not self._stop.is_set():
                self.broken = exc

    def _events(self, version: str) -> None:
        last: dict[str, bool] = {}
        for event in self._watch.stream(self.v1.list_node, timeout_seconds=150,
                                        resource_version=version):
            node = event["object"]
            name = node.metadata.name
            cordoned = bool(node.spec.unschedulable)
            if last.get(name, False) != cordoned:
                self.cordons.append((name, cordoned))
            last[name] = cordoned

    def most_cordoned_at_once(self) -> int:
        now: set[str] = set()
        most = 0
        for name, cordoned in self.cordons:
            (now.add if cordoned else now.discard)(name)
            most = max(most, len(now))
        return most

    def _run(self) -> None:
        rounds = 0
        while not self._stop.wait(0.2):
            try:
                nodes = self.v1.list_node(_request_timeout=2).items
            except Exception:  # noqa: BLE001 - the API may blink; sample on
                continue
            rounds += 1
            for node in nodes:
                self.samples.append(self._sample(rounds, node))

    def _sample(self, rounds: int, node) -> Sample:
        name = node.metadata.name
        ready = any(c.type == "Ready" and c.status == "True"
                    for c in node.status.conditions or [])
        return Sample(rounds, name, bool(node.spec.unschedulable),
                      any(t.key == UNSCHEDULABLE
                          for t in node.spec.taints or []), ready,
                      main_pid(self.lab, name) if name in AGENTS else 0)

    def of(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.node == name]


def main_pid(lab, name: str) -> int:
    return int(show(lab, name).splitlines()[0].split("=")[1])


@pytest.fixture(scope="module")
def v1(lab) -> client.CoreV1Api:
    api = config.new_client_from_config(str(lab.state.kubeconfig))
    api.configuration.proxy = None
    return client.CoreV1Api(api)


@pytest.fixture
def workload(v1):
    """On each agent a ReplicaSet's pod (evicted by a drain) and a
    DaemonSet's (kept); whatever a test leaves is removed afterwards."""
    for agent in AGENTS:
        v1.create_namespaced_pod("default", pod(f"web-{agent}", agent,
                                                "ReplicaSet"))
        v1.create_namespaced_pod("default", pod(f"logs-{agent}", agent,
                                                "DaemonSet"))
    yield
    for item in v1.list_namespaced_pod("default").items:
        v1.delete_namespaced_pod(item.metadata.name, "default")
    for node in v1.list_node().items:
        if node.spec.unschedulable:
            v1.patch_node(node.metadata.name,
                          {"spec": {"unschedulable": False}})


def pods(v1) -> set[tuple[str, str]]:
    return {(p.metadata.name, p.spec.node_name)
            for p in v1.list_namespaced_pod("default").items}


def chaos(lab, tmp_path: Path) -> tuple[list[str], dict]:
    argv = [str(Path(sys.executable).parent / "chaos"), "run",
            "--var", f"lab_k3s_version={lab.spec().release.version}",
            "--var", f"lab_name={lab_names().name}", str(EXPERIMENT)]
    # $CHAOSK3S_STATE_DIR as the lab fixture set it: the base the lab's
    # state lives under (a parallel worker's lab is in base/labs/wK, its
    # state.root), so the run finds the lab rather than starting one.
    env = {**os.environ, "CHAOSK3S_LEDGER_DIR": str(tmp_path / "ledger")}
    return argv, env


def assert_uncordoned(v1) -> None:
    """No node cordoned now; the taint gone at the lifecycle
    controller's next pass (1 s on the lab)."""
    assert not any(n.spec.unschedulable for n in v1.list_node().items)
    deadline = time.monotonic() + 5
    while any(n.spec.taints for n in v1.list_node().items):
        assert time.monotonic() < deadline, "a taint stayed"
        time.sleep(0.2)


def journal_of(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "journal.json").read_text())


def cordons(faults: list[dict]) -> dict[str, dict]:
    return {f["nodes"][0]: f for f in faults if f["kind"] == "cordon"}


def ledger_faults(tmp_path: Path) -> list[dict]:
    [path] = (tmp_path / "ledger").glob("*.json")
    return json.loads(path.read_text())["faults"]


def stamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_maintenance_cordons_drains_restarts_then_uncordons(
        lab, v1, workload, tmp_path):
    before = {agent: main_pid(lab, agent) for agent in AGENTS}
    argv, env = chaos(lab, tmp_path)
    with Watcher(lab, v1) as watcher:
        result = subprocess.run(argv, cwd=tmp_path, env=env, timeout=110,
                                capture_output=True, text=True, check=False)
        time.sleep(2)  # the last uncordon's taint goes within 1 s
    assert result.returncode == 0, result.stderr[-3000:]
    journal = journal_of(tmp_path)
    assert journal["status"] == "completed" and not journal["deviated"]
    # evicted: the ReplicaSets' pods; kept: the DaemonSets'
    assert pods(v1) == {(f"logs-{a}", a) for a in AGENTS}
    for agent in AGENTS:
        seen = watcher.of(agent)
        restarted = [s for s in seen if s.pid != before[agent]]
        assert restarted, f"{agent}'s k3s was never seen restarting"
        # the restart began while the node was cordoned, the lifecycle
        # controller tainted it, and it was uncordoned (and the taint
        # gone) only once the new k3s ran and the node was Ready
        assert restarted[0].cordoned, restarted[0]
        assert any(s.tainted for s in seen if s.cordoned)
        last_cordoned = max(i for i, s in enumerate(seen) if s.cordoned)
        after = seen[last_cordoned + 1:]
        assert after and all(s.pid not in (0, before[agent]) and s.ready
                             and not s.cordoned for s in after), after[:3]
        # the taint goes at the lifecycle controller's next pass (1 s)
        tainted = [s for s in after if s.tainted]
        assert not after[-1].tainted and len(tainted) <= 10, tainted
    # one node at a time, each cordoned once and uncordoned once
    assert watcher.cordons == [(a, c) for a in AGENTS for c in (True, False)]
    assert watcher.most_cordoned_at_once() == 1
    check_journal(tmp_path, journal)


def check_journal(tmp_path: Path, journal: dict) -> None:
    """Each cordon is a fault with its times, around its node's restart,
    ended by the uncordon; the report shows it."""
    faults = journal["chaosk3s"]["faults"]
    found = cordons(faults)
    assert set(found) == set(AGENTS)
    for agent, fault in found.items():
        [restart] = [f for f in faults if f["kind"] == "restart"
                     and f["nodes"] == [agent]]
        assert fault["healed_by"] == "uncordon", fault
        assert stamp(fault["started_at"]) <= stamp(restart["started_at"])
        assert stamp(restart["ended_at"]) <= stamp(fault["ended_at"])
        assert fault["evicted"] == [f"default/web-{agent}"]
    from chaosk3s.report import render_journal
    page = html.unescape(render_journal(tmp_path / "journal.json",
                                        tmp_path).read_text())
    for agent, fault in found.items():
        assert f"fault {fault['id']} (cordon): cordon and drain {agent}" \
            in page


def restart_recorded(tmp_path: Path) -> bool:
    """The run's ledger (written atomically) holds a restart."""
    return any(f["kind"] == "restart" for path in
               (tmp_path / "ledger").glob("*.json")
               for f in json.loads(path.read_text())["faults"])


@pytest.mark.parametrize("moment", ["cordon seen", "restart recorded"])
def test_sigterm_after_the_cordon_leaves_the_node_uncordoned(
        lab, v1, workload, tmp_path, moment):
    """SIGTERM once the API shows the cordon, or the moment the restart
    that follows is on disk: the runner then mirrors that record into
    the journal so far, where the signal's InterruptExecution used to be
    logged and lost (the restart went on and the maintenance uncordoned
    the node itself: healed by "uncordon"; failed 1 in 3 beside another
    worker's lab, whose load makes that window longer)."""
    argv, env = chaos(lab, tmp_path)
    runner = subprocess.Popen(argv, cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (any(n.spec.unschedulable for n in v1.list_node().items)
                   if moment == "cordon seen" else
                   restart_recorded(tmp_path)):
            assert runner.poll() is None and time.monotonic() < deadline
            time.sleep(0.1 if moment == "cordon seen" else 0.001)
        runner.send_signal(signal.SIGTERM)
        stderr = runner.communicate(timeout=90)[1]
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode != 0, stderr[-2000:]
    assert_uncordoned(v1)
    [fault] = cordons(ledger_faults(tmp_path)).values()
    assert fault["ended_at"] and fault["healed_by"] == "cleanup", (
        fault, stderr[-2000:])
    assert fault["open_nodes"] == []


def test_a_drain_that_fails_after_the_cordon_is_uncordoned_by_cleanup(
        lab, v1, workload, tmp_path):
    """A pod no controller owns: chaosk8s cordons the node, then cannot
    evict it; the method's action fails, the steady state after finds
    the node cordoned, and the control's cleanup uncordons it."""
    first = AGENTS[0]
    bare = pod("debug", first, "ReplicaSet")
    del bare["metadata"]["ownerReferences"]
    v1.create_namespaced_pod("default", bare)
    pid = main_pid(lab, first)
    argv, env = chaos(lab, tmp_path)
    with Watcher(lab, v1) as watcher:
        result = subprocess.run(argv, cwd=tmp_path, env=env, timeout=110,
                                capture_output=True, text=True, check=False)
        time.sleep(1)  # the watch delivers what the run did last
    assert result.returncode == 1, result.stderr[-3000:]
    journal = journal_of(tmp_path)
    # deviated: the node was still cordoned at the steady state after
    # (the cleanup comes later); the drain is named as what raised
    assert journal["status"] == "completed" and journal["deviated"]
    after = {p["activity"]["name"]: p["tolerance_met"]
             for p in journal["steady_states"]["after"]["probes"]}
    assert after == {"all-nodes-ready": True, "no-node-cordoned": False}
    [failed] = journal["chaosk3s"]["failed_activities"]
    assert "default/debug" in failed["error"], failed
    assert watcher.cordons == [(first, True), (first, False)]
    assert main_pid(lab, first) == pid  # never restarted
    assert_uncordoned(v1)
    [fault] = cordons(journal["chaosk3s"]["faults"]).values()
    assert fault["healed_by"] == "cleanup" and fault["ended_at"], fault
