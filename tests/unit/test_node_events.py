"""The nodes' readiness Events: read from the emulated API server (real
HTTP, real etcd) through chaosk3s.kube, and shown by the report."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client

from chaosk3s.errors import KubeUnavailable
from chaosk3s.kube import Kube
from chaosk3s.node_events import read_node_events
from chaosk3s.report import load_journal
from chaosk3s.report.render import render_report
from chaosk3s.report.samples import lab_journal
from tests.unit.conftest import write_kubeconfig
from tests.unit.test_apiserver import kube

NOW = datetime.now(UTC).replace(microsecond=0)


def stamp(seconds: float) -> str:
    return (NOW + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def post(v1, namespace: str, name: str, reason: str, at: float,
         kind: str = "Node") -> None:
    v1.create_namespaced_event(namespace, {
        "metadata": {"name": name},
        "involvedObject": {"kind": kind, "name": "agent-0"},
        "reason": reason, "type": "Normal", "count": 1,
        "source": {"component": "node-controller"},
        "message": f"Node agent-0 status is now: {reason}",
        "firstTimestamp": stamp(at), "lastTimestamp": stamp(at)})


def test_only_node_readiness_events_of_the_run(api, tmp_path):
    v1 = client.CoreV1Api(kube(api))
    post(v1, "default", "before", "NodeNotReady", -120)  # before the run
    post(v1, "default", "down", "NodeNotReady", 5)
    post(v1, "default", "up", "NodeReady", 30)
    post(v1, "default", "pod", "NodeNotReady", 6, kind="Pod")
    post(v1, "default", "other", "RegisteredNode", 7)
    post(v1, "kube-system", "elsewhere", "NodeReady", 8)
    target = Kube(str(write_kubeconfig(tmp_path / "kc", api.url)), [None])
    events = read_node_events(target, NOW, NOW + timedelta(minutes=1))
    assert [(e["node"], e["reason"], datetime.fromisoformat(
        e["at"].replace("Z", "+00:00"))) for e in events] == [
        ("agent-0", "NodeNotReady", NOW + timedelta(seconds=5)),
        ("agent-0", "NodeReady", NOW + timedelta(seconds=30))]
    assert events[0]["source"] == "node-controller"


def test_an_unreachable_api_raises_rather_than_says_none(tmp_path):
    """The control records it as not read (null, with why), never as an
    empty list, which says "none"."""
    target = Kube(str(write_kubeconfig(tmp_path / "kc",
                                       "http://127.0.0.1:9")), [None])
    with pytest.raises(KubeUnavailable, match="refused"):
        read_node_events(target, NOW, NOW)


def test_a_watch_view_is_not_shown_as_a_fresh_read(tmp_path):
    """The report says when `recovered` was judged on the readiness
    watch's view, and why; a fresh read shows nothing more."""
    raw = lab_journal()
    assert raw["chaosk3s"]["final_source"] == "api"  # the real builder's
    assert 'id="final-source"' not in page(tmp_path, "absent")
    raw["chaosk3s"].update(final_source="watch", final_error="no fresh "
                           "read within 5s: timed out")
    path = tmp_path / "watch.json"
    path.write_text(json.dumps(raw))
    html = render_report(load_journal(path))
    assert ('judged on the readiness watch\'s view, not a fresh API read'
            '</span> <span class="muted">no fresh read within 5s: timed '
            'out</span>') in html.replace("&#39;", "'")
    # and in the verdict's notes (which JUnit messages carry too)
    assert ("Nodes judged on the readiness watch's last view, not a fresh "
            "API read: no fresh read within 5s: timed out.") in \
        html.replace("&#39;", "'")


def page(tmp_path, events, key: str = "node_events") -> str:
    """The sample journal's report with the section's key set to events
    (left out: "absent")."""
    raw = lab_journal()
    if events != "absent":
        raw["chaosk3s"][key] = events
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(raw))
    return render_report(load_journal(path))


def test_the_report_lists_them_with_offsets_and_utc_times(tmp_path):
    start = datetime(2026, 11, 25, 21, 39, 50, tzinfo=UTC)
    html = page(tmp_path, [
        {"node": "agent-0", "reason": "NodeNotReady", "source":
         "node-controller", "message": "<b>down</b>",
         "at": (start + timedelta(seconds=20)).isoformat()},
        {"node": "agent-0", "reason": "NodeReady", "source": "kubelet",
         "message": "up", "at": (start + timedelta(seconds=42)).isoformat()}])
    table = html.split('<table id="node-events">', 1)[1].split("</table>")[0]
    assert table.count('<tr class="node-event">') == 2
    assert "+20 s (21:40:10.0 UTC)" in table
    assert "&lt;b&gt;down&lt;/b&gt;" in table  # escaped, as everything


def test_none_and_empty_and_absent_read_differently(tmp_path):
    assert "could not be read from the API" in page(tmp_path, None)
    raw = lab_journal()
    raw["chaosk3s"].update(node_events=None, node_events_error="not read: "
                           "no API server of the target answered: <x>")
    path = tmp_path / "why.json"
    path.write_text(json.dumps(raw))
    assert ("could not be read from the API when the run ended: not read: "
            "no API server of the target answered: &lt;x&gt;.") in \
        render_report(load_journal(path))  # why, escaped
    assert "recorded no NodeNotReady or NodeReady Event" in page(tmp_path,
                                                                  [])
    assert 'id="node-events"' not in page(tmp_path, "absent")
