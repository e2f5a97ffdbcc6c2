"""Node readiness as it changes, from one list + watch of the API.

A watch sees a Ready transition within milliseconds of the API server
storing it; polling every few seconds (what the peers do) cannot.
"""

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from chaosk3s.kube import Kube, KubeUnavailable, NodeState, node_state

Predicate = Callable[[dict[str, NodeState]], bool]


def utc_now() -> str:
    return datetime.now(UTC).isoformat()


class ReadinessWatch:
    """Keeps every node's Ready status current in a background thread."""

    def __init__(self, kube: Kube, label_selector: str = "",
                 watch_seconds: int = 60):
        self.kube = kube
        self.label_selector = label_selector
        self.watch_seconds = watch_seconds
        self.states: dict[str, NodeState] = {}
        self._objects: dict[str, dict] = {}  # the Node objects last seen
        self.timeline: list[dict] = []  # {"node", "at", "ready"}
        self.error: str | None = None
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._listed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="chaosk3s-readiness")

    def start(self, timeout: float = 10) -> "ReadinessWatch":
        self._thread.start()
        if not self._listed.wait(timeout):
            self.stop()
            raise KubeUnavailable(
                f"could not list nodes within {timeout:.0f}s: {self.error}")
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()

    def nodes(self) -> list[dict]:
        """The Node objects as last listed or watched: what the run knows
        of the nodes without asking the API (which may hang under the
        very fault just applied)."""
        with self._changed:
            return list(self._objects.values())

    def wait(self, predicate: Predicate, timeout: float) -> bool:
        """Block until predicate(states) holds or timeout; return which."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(dict(self.states)):
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return False
                self._changed.wait(min(left, 1.0))
            return True

    # -- the thread -----------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                version = self._list()
                backoff = 0.2
                self._watch(version)
            except Exception as exc:  # any API failure: re-list shortly
                self.error = f"{type(exc).__name__}: {exc}"
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _list(self) -> str:
        listing = self.kube.list_nodes(self.label_selector)
        relisted = self._listed.is_set()  # after a gap in the watch
        seen = set()
        for item in listing.get("items", []):
            self._record(item, relisted)
            seen.add(item["metadata"]["name"])
        with self._changed:
            for gone in set(self.states) - seen:
                del self.states[gone]
                self._objects.pop(gone, None)
            self._changed.notify_all()
        self._listed.set()
        return listing.get("metadata", {}).get("resourceVersion", "")

    def _watch(self, version: str) -> None:
        for event in self.kube.watch_nodes(version, self.watch_seconds,
                                           self.label_selector):
            if self._stop.is_set():
                return
            kind, obj = event.get("type"), event.get("object", {})
            if kind == "ERROR":
                raise KubeUnavailable(obj.get("message", "watch error"))
            if kind == "DELETED":
                with self._changed:
                    self.states.pop(obj["metadata"]["name"], None)
                    self._objects.pop(obj["metadata"]["name"], None)
                    self._changed.notify_all()
            elif kind in ("ADDED", "MODIFIED"):
                self._record(obj)

    def _record(self, node: dict, relisted: bool = False) -> None:
        state = node_state(node)
        with self._changed:
            before = self.states.get(state.name)
            self.states[state.name] = state
            self._objects[state.name] = node
            if before is None or before.ready != state.ready:
                now = utc_now()
                entry = {"node": state.name, "at": now, "ready": state.ready}
                if relisted and before is not None:
                    entry["at"] = self._changed_at(state, now)
                    entry["observed_at"] = now
                self.timeline.append(entry)
            self._changed.notify_all()

    def _changed_at(self, state: NodeState, now: str) -> str:
        """When a change seen only on a re-list happened. The watch was
        broken (often by the very outage being measured), so the moment
        of the re-list is late by the length of the gap; the condition's
        lastTransitionTime says when it changed, clamped between the
        node's previous change and now so that another clock's skew
        cannot reorder the timeline."""
        try:
            moment = _aware(datetime.fromisoformat(
                (state.transition or "").replace("Z", "+00:00")))
        except ValueError:
            return now
        previous = [e["at"] for e in self.timeline
                    if e["node"] == state.name]
        earliest = _aware(datetime.fromisoformat(previous[-1])) \
            if previous else moment
        latest = _aware(datetime.fromisoformat(now))
        return min(max(moment, earliest), latest).isoformat()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
