"""The journal so far is written between activities without an API read.

Was: after each activity the control listed the nodes for the journal
so far. An API server that accepts connections and never answers (what
a cut between the control plane and etcd makes of it) cost 10 s a try,
retried, per context, before the next activity began: a 15 s cut was
held over 60 s. Now the readiness watch's last view stands in.
"""

import json
import time
from types import SimpleNamespace

import pytest
from kubernetes import client, config

from chaosk3s import control
from chaosk3s.kube import Kube
from chaosk3s.model import Node
from chaosk3s.readiness import ReadinessWatch
from tests.unit.conftest import (
    the_silent_api_is_silent,
    wait_for,
    write_kubeconfig,
)
from tests.unit.test_apiserver import node_body


@pytest.fixture
def run_state(api, tmp_path, monkeypatch, silent_api):
    """The control's state mid-run: the watch on the answering API, the
    target's API (what an API read would ask) the silent one."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url)
    v1 = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
    for name in ("server-etcd-0", "agent-0"):
        v1.create_node(node_body(name))
    watch = ReadinessWatch(Kube(str(kubeconfig), ["lab"])).start()
    wait_for(lambda: len(watch.nodes()) == 2, what="both nodes watched")
    silent = Kube(str(write_kubeconfig(tmp_path / "silent", silent_api)),
                  ["lab"])
    monkeypatch.setattr(control, "get_target",
                        lambda _conf: SimpleNamespace(kube=silent))
    state = control._State()
    state.journal_path = tmp_path / "journal.json"
    state.run = SimpleNamespace(run_id="r", ledger=SimpleNamespace(
        entries=lambda: []))
    state.watch = watch
    state.nodes_at_start = {
        "server-etcd-0": Node("server-etcd-0", "etcd", "10.0.0.1", None),
        "agent-0": Node("agent-0", "agent", "10.0.0.2", "server-etcd-0")}
    state.partial = {"experiment": {}, "start": "2026-11-29T00:00:00+00:00",
                     "run": [], "rollbacks": [], "steady_states": {
                         "before": None, "after": None, "during": []}}
    monkeypatch.setattr(control, "_state", state)
    try:
        yield state
    finally:
        watch.stop()


def test_after_an_activity_the_journal_is_written_without_asking_the_api(
        run_state, silent_api):
    the_silent_api_is_silent(silent_api)
    began = time.monotonic()
    control.after_activity_control(
        {"name": "cut"}, state={"activity": {"name": "cut"},
                                "status": "succeeded"})
    took = time.monotonic() - began
    assert took < 2, f"the next activity waited {took:.1f} s"
    journal = json.loads(run_state.journal_path.read_text())
    assert [a["activity"]["name"] for a in journal["run"]] == ["cut"]
    nodes = journal["chaosk3s"]["nodes"]
    assert sorted(nodes) == ["agent-0", "server-etcd-0"]
    assert all(n["recovered"] for n in nodes.values()), nodes
    # said so: the watch's view, by design, no read tried
    assert [journal["chaosk3s"][k] for k in (
        "final_source", "final_error", "api_reachable")] == [
        "watch", None, None]


def test_a_ledger_change_mid_fault_writes_without_asking_the_api(
        run_state, silent_api):
    the_silent_api_is_silent(silent_api)
    began = time.monotonic()
    control._ledger_changed()
    assert time.monotonic() - began < 2
    assert json.loads(run_state.journal_path.read_text())["chaosk3s"][
        "nodes"]
