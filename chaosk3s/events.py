"""The run's record in the cluster: Kubernetes Events on its nodes.

For each fault, on every node it acts on: ChaosK3sFaultInjected
(Warning) when it is recorded, just before it is applied, and
ChaosK3sFaultHealed (Normal) when it ends; at the end of the run, on
every node a fault touched: ChaosK3sRun<Verdict> (Completed, Deviated,
Failed, Interrupted, Aborted). They are posted the way the kubelet posts
its node events: in the `default` namespace, about a Node whose
involvedObject.uid is the node's name, which is what `kubectl describe
node` searches for (kubectl's node describer sets ref.UID to the name;
the kubelet's node recorder does the same). Each carries the label
chaosk3s.io/run=<run id>:

    kubectl get events -l chaosk3s.io/run=<run id>
    kubectl describe node agent-0

Best effort and never in a fault's way: events are queued and a thread
posts them, retrying while the API is away (a fault may cause exactly
that), until the run's cleanup flushes them within a bound; what cannot
be posted by then is logged.
"""

import logging
import socket
import threading
import time
from collections import deque
from datetime import UTC, datetime

from chaosk3s.errors import KubeRejected, KubeUnavailable
from chaosk3s.kube import Kube

logger = logging.getLogger("chaostoolkit")
NAMESPACE = "default"  # where node events live
RUN_LABEL = "chaosk3s.io/run"
COMPONENT = "chaosk3s"
POST_TIMEOUT = (2.0, 5.0)  # (connect, read) seconds per post
RETRY_SECONDS = 1.0  # between posts while the API does not answer
FLUSH_SECONDS = 10.0  # what the run's end waits at most


def _stamp(moment: str | None) -> str:
    """An ISO time (the ledger's) as metav1.Time: seconds, UTC, Z."""
    try:
        parsed = datetime.fromisoformat(moment) if moment else None
    except ValueError:
        parsed = None
    parsed = (parsed or datetime.now(UTC)).astimezone(UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


def verdict_of(journal: dict, aborted: dict | None) -> tuple[str, str]:
    """(reason suffix, event type) of a finished run's journal."""
    if aborted:
        return "Aborted", "Warning"
    if journal.get("deviated"):
        return "Deviated", "Warning"
    status = str(journal.get("status") or "interrupted")
    if status == "completed":
        return "Completed", "Normal"
    return status.capitalize(), "Warning"


class EventRecorder:
    """The Events of one run, posted from a thread of their own."""

    def __init__(self, kube: Kube, run_id: str):
        self.kube, self.run_id = kube, run_id
        self.host = socket.gethostname()
        self.posted: list[dict] = []
        self.touched: list[str] = []  # nodes any fault acted on
        self._queue: deque[dict] = deque()
        self._cv = threading.Condition()
        self._busy = False
        self._stopping = False
        self._seen: set[tuple[str, str]] = set()  # (fault id, phase)
        self._count = 0  # events named so far: names stay unique
        self._thread: threading.Thread | None = None

    # -- what happened ------------------------------------------------------
    def faults_changed(self, entries: list[dict]) -> None:
        """Queue events for faults recorded or ended since the last call
        (the ledger's entries, as the control sees every change)."""
        for entry in entries:
            fault_id, nodes = str(entry.get("id")), entry.get("nodes") or []
            what = (f"fault {fault_id} ({entry.get('kind', 'fault')}): "
                    f"{entry.get('description') or ''}").rstrip(": ")
            if (fault_id, "injected") not in self._seen:
                self._seen.add((fault_id, "injected"))
                self.touched += [n for n in nodes if n not in self.touched]
                self._add(nodes, "ChaosK3sFaultInjected", "Warning",
                          f"chaosk3s run {self.run_id}: {what}",
                          entry.get("started_at"))
            if entry.get("ended_at") and \
                    (fault_id, "healed") not in self._seen:
                self._seen.add((fault_id, "healed"))
                by = entry.get("healed_by")
                self._add(nodes, "ChaosK3sFaultHealed", "Normal",
                          f"chaosk3s run {self.run_id}: {what}: ended"
                          f"{f' ({by})' if by else ''}", entry["ended_at"])

    def run_ended(self, title: str, journal: dict,
                  aborted: dict | None = None) -> None:
        """The verdict, on every node the run's faults touched."""
        kind, event_type = verdict_of(journal, aborted)
        said = f"chaosk3s run {self.run_id} ({title}): {kind.lower()}"
        if aborted:
            said += (f" by the cluster's abort switch (by "
                     f"{aborted.get('by')}: {aborted.get('reason') or '-'})")
        self._add(self.touched, f"ChaosK3sRun{kind}", event_type, said,
                  journal.get("end"))

    def _add(self, nodes: list[str], reason: str, event_type: str,
             message: str, moment: str | None) -> None:
        with self._cv:
            for node in nodes:
                self._queue.append(self._event(node, reason, event_type,
                                               message, _stamp(moment)))
            self._cv.notify_all()

    def _event(self, node: str, reason: str, event_type: str, message: str,
               stamp: str) -> dict:
        self._count += 1
        name = f"{node}.chaosk3s-{self.run_id}-{self._count}"
        return {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "labels": {RUN_LABEL: self.run_id}},
            "involvedObject": {"apiVersion": "v1", "kind": "Node",
                               "name": node, "uid": node},
            "reason": reason, "message": message[:1024],
            "type": event_type, "count": 1,
            "firstTimestamp": stamp, "lastTimestamp": stamp,
            "source": {"component": COMPONENT, "host": self.host},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.host}

    # -- posting --------------------------------------------------------------
    def start(self) -> "EventRecorder":
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="chaosk3s-events")
        self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._stopping:
                    self._cv.wait()
                if not self._queue:
                    return
                event, self._busy = self._queue[0], True
            posted = self._post(event)
            with self._cv:
                self._busy = False
                if posted is not None:
                    self._queue.popleft()
                    if posted:
                        self.posted.append(event)
                self._cv.notify_all()
                if posted is None:  # the API is away: wait, then retry
                    self._cv.wait(RETRY_SECONDS)
                    if self._stopping:
                        return

    def _post(self, event: dict) -> bool | None:
        """True: posted; False: refused for good (dropped); None: the
        API did not answer (retry)."""
        try:
            self.kube.call("create_namespaced_event", POST_TIMEOUT,
                           namespace=NAMESPACE, body=event)
            return True
        except KubeRejected as exc:
            if exc.status == 409:  # a retry of one that did land
                return True
            logger.warning("chaosk3s: event %s on %s refused: %s",
                           event["reason"], event["involvedObject"]["name"],
                           exc)
            return False
        except KubeUnavailable:
            return None

    def flush(self, timeout: float = FLUSH_SECONDS) -> list[dict]:
        """Wait until every event is posted (at most timeout s), then
        stop; returns the events that could not be posted."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while (self._queue or self._busy) and \
                    time.monotonic() < deadline:
                self._cv.wait(min(0.2, max(0.0, deadline -
                                           time.monotonic())))
            self._stopping = True
            left = list(self._queue)
            self._queue.clear()
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=POST_TIMEOUT[1] + 1)
        if left:
            logger.warning("chaosk3s: %d event(s) could not be posted to "
                           "the cluster (its API did not answer): %s",
                           len(left), ", ".join(
                               f"{e['reason']} on "
                               f"{e['involvedObject']['name']}"
                               for e in left))
        return left
