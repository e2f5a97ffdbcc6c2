"""A run's link to its cluster while it lasts: the abort switch it
watches (chaosk3s.abort) and the Events it leaves (chaosk3s.events).

The control opens one when a run begins and closes it at the run's end.
Both talk to the API through a Kube of their own: their threads never
share connections with the run's activities.
"""

import logging
from collections.abc import Callable

from chaosk3s.abort import AbortWatch
from chaosk3s.errors import INTERRUPTIONS
from chaosk3s.events import EventRecorder
from chaosk3s.kube import Kube
from chaosk3s.target import Target

logger = logging.getLogger("chaostoolkit")


class ClusterLink:
    def __init__(self, target: Target, run_id: str,
                 on_abort: Callable[[dict], None]):
        inventory = target.inventory

        def kube() -> Kube:
            return Kube(inventory.kubeconfig, list(inventory.contexts))

        self.run_id = run_id
        self.events = EventRecorder(kube(), run_id)
        self.watch = AbortWatch(kube(), inventory.cluster, on_abort)

    def open(self) -> "ClusterLink":
        self.events.start()
        self.watch.start()
        return self

    @property
    def aborted(self) -> dict | None:
        """The abort, once the watch saw it."""
        return self.watch.seen

    def faults_changed(self, entries: list[dict]) -> None:
        try:
            self.events.faults_changed(entries)
        except INTERRUPTIONS:
            raise  # a signal's (SIGTERM) ends the activity (errors.py)
        except Exception:  # noqa: BLE001 - a record, never the run's end
            logger.exception("chaosk3s: cannot queue the faults' events")

    def stop_watching(self) -> None:
        """At once: the cleanup heal comes next and must not wait for a
        poll that hangs (on_abort after this finds the run cleaning)."""
        self.watch.stop(wait=0)

    def close(self, title: str, journal: dict | None) -> None:
        """The verdict's Events, then every Event posted (within
        events.FLUSH_SECONDS, plus a post in flight)."""
        self.watch.stop(wait=0)
        if journal is not None:
            self.events.run_ended(title, journal, self.aborted)
        self.events.flush()
