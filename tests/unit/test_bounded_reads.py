"""An API that hangs cannot hold up the rollbacks or the cleanup heal.

Was: after the method the control read the API with the client's
retries (urllib3 tries a request four times, 10 s each, per kube
context): with an API server that accepts connections and never answers
(what a cut between the control plane and etcd makes of it), the
fresh read at the steady state after the method held the first rollback
40.1 s; at the run's end the nodes' Events (4 x 5 s) and the abort
watch's last poll (joined up to 10 s) held the cleanup heal 24.2 s, and
64.0 s with the end's read of the nodes when the steady state after was
never checked (now 5.0 s, 0.0 s and 5.0 s).

Now every read on that path is one bounded read (Kube.call_within: one
try per context, no retries, BOUNDED_SECONDS in all), the Events and
logs are read after the heal, and when the fresh read does not answer
the journal says that `recovered` was judged on the readiness watch's
last view, and why.

Real Chaos Toolkit runs (chaoslib's run_experiment) with the real
control: the readiness watch on the emulated API server (real HTTP,
real etcd), the target's API (what the control reads) the silent one of
tests/unit/conftest.py, a real ClusterLink polling it. The
seam: the run's heal (safe_cleanup.heal_run), recorded, not performed.
"""

import signal
import threading
import time
from types import SimpleNamespace

import pytest
from chaoslib.experiment import run_experiment
from kubernetes import client, config

from chaosk3s import consent, control, events
from chaosk3s.cluster_link import ClusterLink
from chaosk3s.errors import KubeUnavailable
from chaosk3s.kube import BOUNDED_SECONDS, Kube
from chaosk3s.model import Node
from chaosk3s.readiness import ReadinessWatch
from tests.unit.conftest import (
    free_port,
    the_silent_api_is_silent,
    wait_for,
    write_kubeconfig,
)
from tests.unit.test_apiserver import node_body

SLACK = 1.5  # seconds: the control's own work around a bounded read
MARKS: list[tuple[str, float]] = []  # (what, time.monotonic())
NODES = ("server-etcd-0", "agent-0")
CLUSTER = "test"


def mark(what: str) -> None:
    MARKS.append((what, time.monotonic()))


def when(what: str, nth: int = -1) -> float:
    return [t for w, t in MARKS if w == what][nth]


# -- the experiment's activities (python providers of this module) --------
def probe_up() -> bool:
    mark("probe-end")
    return True


def act(what: str) -> None:
    mark(f"{what}-start")
    time.sleep(0.05)
    mark(f"{what}-end")


def _activity(kind: str, name: str, func: str, **arguments) -> dict:
    provider = {"type": "python", "module": __name__, "func": func}
    if arguments:
        provider["arguments"] = arguments
    entry = {"type": kind, "name": name, "provider": provider}
    return {**entry, "tolerance": True} if kind == "probe" else entry


def experiment(hypothesis: bool = True) -> dict:
    found = {
        "title": "bounded reads", "description": "the API hangs at the end",
        "controls": [{"name": "chaosk3s", "provider": {
            "type": "python", "module": "chaosk3s.control"}}],
        "method": [_activity("action", "cut", "act", what="cut")],
        "rollbacks": [_activity("action", "restore", "act",
                                what="restore")]}
    if hypothesis:
        found["steady-state-hypothesis"] = {
            "title": "every node Ready",
            "probes": [_activity("probe", "up", "probe_up")]}
    return found


# -- the world: an answering API for the watch, the target's API -----------
@pytest.fixture
def answering(api, tmp_path):
    """The emulated API server with two Ready nodes, consenting to chaos
    as cluster CLUSTER (else the abort watch stops the run); its
    kubeconfig."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url)
    v1 = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
    for name in NODES:
        v1.create_node(node_body(name))
    consent.grant(Kube(str(kubeconfig), [None]), CLUSTER)
    return str(kubeconfig)


@pytest.fixture
def world(answering, silent_api, tmp_path, monkeypatch):
    """world(hung) -> the control set up as _prepare would, its target's
    API the silent one (hung=True) or the answering one. Records when
    the heal starts; restores the signal handlers the control sets."""
    MARKS.clear()
    watches: list[ReadinessWatch] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM,
                                                 signal.SIGINT)}

    def setup(hung: bool) -> None:
        kubeconfig = str(write_kubeconfig(tmp_path / "target", silent_api)
                         ) if hung else answering
        inventory = SimpleNamespace(kubeconfig=kubeconfig,
                                    contexts=["lab"], cluster=CLUSTER)
        target = SimpleNamespace(kube=Kube(kubeconfig, ["lab"]),
                                 inventory=inventory)
        monkeypatch.setattr(control, "get_target", lambda _conf: target)

        def prepare(configuration: dict, experiment: dict) -> None:
            state = control._state
            state.journal_path = tmp_path / "journal.json"
            state.run = SimpleNamespace(
                run_id="r", method_started=False,
                ledger=SimpleNamespace(entries=lambda: []),
                session=SimpleNamespace(close=lambda: None))
            state.link = ClusterLink(target, "r", control._on_abort).open()
            state.watch = ReadinessWatch(Kube(answering, ["lab"])).start()
            watches.append(state.watch)
            wait_for(lambda: len(state.watch.nodes()) == 2,
                     what="both nodes watched")
            state.nodes_at_start = {
                "server-etcd-0": Node("server-etcd-0", "etcd", "10.0.0.1",
                                      None),
                "agent-0": Node("agent-0", "agent", "10.0.0.2",
                                "server-etcd-0")}
            state.partial = {"experiment": experiment, "start":
                             control.utc_now(), "run": [], "rollbacks": [],
                             "steady_states": {"before": None,
                                               "after": None,
                                               "during": []}}

        monkeypatch.setattr(control, "_prepare", prepare)

    monkeypatch.setattr(control, "heal_run", lambda run: mark("heal"))
    monkeypatch.setattr(control, "end_run", lambda: None)
    monkeypatch.setattr(control, "forget_targets", lambda: None)
    try:
        yield setup
    finally:
        for watch in watches:
            watch.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_a_hung_api_after_the_method_holds_the_rollback_briefly(
        world, silent_api):
    """The first rollback starts within the bound of the hypothesis'
    probes ending (was 40 s), and the journal says that `recovered` was
    judged on the watch's view because the API did not answer."""
    world(hung=True)
    the_silent_api_is_silent(silent_api)
    journal = run_experiment(experiment())
    held = when("restore-start") - when("probe-end")
    assert held < BOUNDED_SECONDS + SLACK, f"rollback held {held:.1f}s"
    assert held >= BOUNDED_SECONDS - 0.5, "no bounded read was tried"
    # nodes read already, Events after the heal, abort watch not joined
    heal = when("heal") - when("restore-end")
    assert heal < SLACK, f"heal held {heal:.1f}s"
    section = journal["chaosk3s"]
    assert (section["final_source"], section["api_reachable"]) == (
        "watch", False)
    assert f"within {BOUNDED_SECONDS:g}s" in section["final_error"]
    assert "timed out" in section["final_error"]
    # judged on the watch's view: both nodes Ready, as it saw them
    assert {n: v["recovered"] for n, v in section["nodes"].items()} == {
        n: True for n in NODES}
    assert section["checked_at"] is not None


def test_a_hung_api_at_the_end_holds_the_heal_within_the_bound(
        world, silent_api):
    """No steady state after the method: the nodes are read at the
    run's end (bounded), before the heal; the Events and logs after it,
    recorded as not read, with why (was: the nodes' and the Events'
    reads and the abort watch's last poll held the heal 64 s)."""
    world(hung=True)
    journal = run_experiment(experiment(hypothesis=False))
    held = when("heal") - when("restore-end")
    assert held < BOUNDED_SECONDS + SLACK, f"heal held {held:.1f}s"
    section = journal["chaosk3s"]
    assert section["final_source"] == "watch"
    assert section["final_error"].startswith(
        f"no fresh read within {BOUNDED_SECONDS:g}s")
    assert section["node_events"] is None
    assert section["node_events_error"].startswith("not read: ")
    assert "timed out" in section["node_events_error"]
    assert section["node_logs"] is None and section["node_logs_error"]
    # the evidence was read after the heal, bounded too
    assert when("heal") < time.monotonic() - BOUNDED_SECONDS + SLACK


def test_an_answering_api_gives_a_fresh_read_and_the_events(world):
    """The positive control: the fresh read answers, the section says
    so, and the Events are read (none: an empty list, not null)."""
    world(hung=False)
    journal = run_experiment(experiment())
    assert when("restore-start") - when("probe-end") < SLACK
    section = journal["chaosk3s"]
    assert (section["final_source"], section["final_error"],
            section["api_reachable"]) == ("api", None, True)
    assert sorted(section["nodes"]) == sorted(NODES)
    assert all(v["recovered"] for v in section["nodes"].values())
    assert section["node_events"] == [] and \
        section["node_events_error"] is None


# -- Kube.call_within ------------------------------------------------------
def _kube(tmp_path, *urls: str) -> Kube:
    """A Kube with one context per URL, in that order."""
    clusters = "".join(
        f"- name: c{i}\n  cluster:\n    server: {url}\n"
        for i, url in enumerate(urls))
    contexts = "".join(
        f"- name: c{i}\n  context:\n    cluster: c{i}\n    user: u\n"
        for i in range(len(urls)))
    path = tmp_path / "multi"
    path.write_text(f"apiVersion: v1\nkind: Config\nclusters:\n{clusters}"
                    f"contexts:\n{contexts}current-context: c0\n"
                    f"users:\n- name: u\n  user: {{}}\n")
    return Kube(str(path), [f"c{i}" for i in range(len(urls))])


def test_a_hung_api_costs_the_bound_not_the_retries(tmp_path, silent_api):
    kube = _kube(tmp_path, silent_api)
    began = time.monotonic()
    with pytest.raises(KubeUnavailable, match="timed out"):
        kube.call_within("list_node", 2)
    assert 1.5 < time.monotonic() - began < 2 + SLACK


def test_a_hung_context_leaves_the_next_its_share(tmp_path, silent_api,
                                                  answering, api):
    """An HA cluster with one server hung: the next context answers
    within the bound."""
    kube = _kube(tmp_path, silent_api, api.url)
    began = time.monotonic()
    listing = kube.call_within("list_node", 4)
    assert sorted(i["metadata"]["name"] for i in listing["items"]) == \
        sorted(NODES)
    assert 1.5 < time.monotonic() - began < 4 + SLACK  # half, then an answer


def test_a_refusing_context_costs_nothing(tmp_path, answering, api):
    refused = f"http://127.0.0.1:{free_port()}"
    kube = _kube(tmp_path, refused, api.url)
    began = time.monotonic()
    assert len(kube.call_within("list_node", 4)["items"]) == 2
    assert time.monotonic() - began < 1


def test_a_ctrl_c_after_the_heal_skips_the_evidence_not_the_journal(
        world, monkeypatch):
    """A Ctrl-C while the Events are read (after the heal: the user
    gives up waiting for a hung API) ends that read; the journal is
    still returned for Chaos Toolkit to write, saying why they are
    missing."""
    world(hung=True)
    main = threading.main_thread().ident

    def heal_then_ctrl_c(run) -> None:
        mark("heal")
        threading.Timer(1.0, signal.pthread_kill, (main, signal.SIGINT)
                        ).start()

    monkeypatch.setattr(control, "heal_run", heal_then_ctrl_c)
    journal = run_experiment(experiment())
    assert time.monotonic() - when("heal") < 1.0 + SLACK
    section = journal["chaosk3s"]
    assert (section["node_events"], section["node_events_error"]) == (
        None, "not read: Ctrl-C")
    assert section["node_logs_error"] == "not read: Ctrl-C"


# -- after the heal: the run's own Events, the abort watch -----------------
def test_a_hung_api_holds_the_runs_end_a_bounded_time(tmp_path,
                                                      silent_api):
    """After the heal, the run's end waits for the Events still queued
    at most FLUSH_SECONDS plus one post in flight, and not for the abort
    watch's poll in flight at all."""
    target = SimpleNamespace(inventory=SimpleNamespace(
        kubeconfig=str(write_kubeconfig(tmp_path / "kc", silent_api)),
        contexts=["lab"], cluster=CLUSTER))
    link = ClusterLink(target, "r", lambda _info: None).open()
    link.faults_changed([{"id": "p-1", "kind": "partition",
                          "nodes": ["agent-0"], "started_at":
                          control.utc_now()}])
    wait_for(lambda: link.events._busy, what="a post in flight")
    began = time.monotonic()
    link.stop_watching()
    assert time.monotonic() - began < 0.2  # the poll in flight: not waited
    link.close("bounded reads", {"status": "completed"})
    took = time.monotonic() - began
    bound = events.FLUSH_SECONDS + events.POST_TIMEOUT[1] + 1
    assert events.FLUSH_SECONDS - 0.5 < took < bound + SLACK, took
