"""The readiness watch's timeline: when a change is stamped.

A fake API at the Kube seam: list_nodes returns the nodes as they are
now; watch_nodes streams what the test puts on its queue and breaks (as
an API outage breaks a real watch) when told to.
"""

import queue
import time
from datetime import UTC, datetime, timedelta

from chaosk3s.kube import KubeUnavailable
from chaosk3s.readiness import ReadinessWatch

BREAK = object()


def _node(name: str, ready: str, since: datetime) -> dict:
    return {"metadata": {"name": name, "resourceVersion": "1"},
            "status": {"conditions": [{
                "type": "Ready", "status": ready,
                "lastTransitionTime": since.strftime("%Y-%m-%dT%H:%M:%SZ")
                if since.microsecond == 0 else since.isoformat()}]}}


class FakeKube:
    def __init__(self, nodes: dict[str, dict]):
        self.nodes = nodes
        self.events: queue.Queue = queue.Queue()

    def list_nodes(self, label_selector: str = "") -> dict:
        return {"metadata": {"resourceVersion": "1"},
                "items": list(self.nodes.values())}

    def watch_nodes(self, version, timeout_seconds, label_selector=""):
        while True:
            event = self.events.get(timeout=timeout_seconds)
            if event is BREAK:
                raise KubeUnavailable("connection refused")
            yield event


def _entries(watch: ReadinessWatch, name: str) -> list[dict]:
    return [e for e in watch.timeline if e["node"] == name]


def _until(predicate, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _at(entry: dict) -> datetime:
    return datetime.fromisoformat(entry["at"])


def test_a_change_seen_by_the_watch_is_stamped_when_seen():
    start = datetime.now(UTC)
    kube = FakeKube({"agent-0": _node("agent-0", "True", start)})
    watch = ReadinessWatch(kube).start()
    try:
        long_ago = start - timedelta(hours=1)
        kube.events.put({"type": "MODIFIED", "object": _node(
            "agent-0", "Unknown", long_ago)})
        _until(lambda: len(_entries(watch, "agent-0")) == 2)
    finally:
        watch.stop()
        kube.events.put(BREAK)
    first, change = _entries(watch, "agent-0")
    assert "observed_at" not in change
    assert _at(change) >= _at(first) >= start


def test_a_change_seen_only_on_a_relist_is_stamped_when_it_happened():
    """The watch broke (an API outage); the node went NotReady during the
    gap. The re-list stamps it with lastTransitionTime, not the moment
    the API came back, and keeps when it was observed."""
    start = datetime.now(UTC)
    kube = FakeKube({"agent-0": _node("agent-0", "True", start),
                     "agent-1": _node("agent-1", "True", start),
                     "agent-2": _node("agent-2", "True", start)})
    watch = ReadinessWatch(kube).start()
    try:
        time.sleep(0.3)
        happened = datetime.now(UTC) - timedelta(milliseconds=200)
        kube.nodes["agent-0"] = _node("agent-0", "Unknown", happened)
        # another clock far behind, and another far ahead: clamped
        kube.nodes["agent-1"] = _node("agent-1", "False",
                                      start - timedelta(days=2))
        kube.nodes["agent-2"] = _node("agent-2", "False",
                                      start + timedelta(days=2))
        time.sleep(0.2)
        kube.events.put(BREAK)
        _until(lambda: all(len(_entries(watch, n)) == 2
                           for n in ("agent-0", "agent-1", "agent-2")))
    finally:
        watch.stop()
        kube.events.put(BREAK)
    first, change = _entries(watch, "agent-0")
    observed = datetime.fromisoformat(change["observed_at"])
    assert abs((_at(change) - happened).total_seconds()) < 0.001
    assert (observed - _at(change)).total_seconds() >= 0.2
    behind = _entries(watch, "agent-1")
    assert _at(behind[1]) == _at(behind[0])  # not before its last change
    ahead = _entries(watch, "agent-2")
    assert _at(ahead[1]) == datetime.fromisoformat(ahead[1]["observed_at"])
