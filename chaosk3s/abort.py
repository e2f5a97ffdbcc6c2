"""The abort switch, watched: a run stops when its cluster says so.

While a run lasts, the chaosk3s control polls the cluster's consent
ConfigMap (chaosk3s.consent) every POLL_SECONDS from a thread of its
own. When the `abort` key appears, or the consent is withdrawn (the
ConfigMap is gone, or names another cluster), `on_abort` is called once
with who set it, when and why. An API that does not answer is no
signal: the watch keeps asking (a fault may well have taken the API
away), and a run whose API never comes back is healed by its own end.
"""

import logging
import threading
import time
from collections.abc import Callable

from chaosk3s import consent
from chaosk3s.errors import KubeError
from chaosk3s.kube import Kube

logger = logging.getLogger("chaostoolkit")
POLL_SECONDS = 1.0
# (connect, read) seconds per poll: an API server that hangs must not
# hold the next poll back for long; one that refuses fails over at once.
POLL_TIMEOUT = (1.0, 2.0)


def abort_reason(seen: consent.Consent | None, cluster: str) -> dict | None:
    """{"by", "at", "reason"} if seen means "stop", else None."""
    if seen is None:
        return {"by": "unknown", "at": consent.now(),
                "reason": f"the consent of cluster {cluster!r} was "
                          f"withdrawn ({consent.NAMESPACE}/{consent.NAME} "
                          f"is gone)"}
    if seen.cluster != cluster:
        return {"by": seen.granted_by or "unknown", "at": consent.now(),
                "reason": f"the consent now names cluster "
                          f"{seen.cluster!r}, not {cluster!r}"}
    return seen.abort


class AbortWatch:
    """Polls in a daemon thread; on_abort(info) is called at most once,
    from that thread (it must not block for long: it heals in a thread
    of its own and signals the run)."""

    def __init__(self, kube: Kube, cluster: str,
                 on_abort: Callable[[dict], None],
                 interval: float = POLL_SECONDS):
        self.kube, self.cluster, self.on_abort = kube, cluster, on_abort
        self.interval = interval
        self.seen: dict | None = None  # the abort, once seen
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "AbortWatch":
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="chaosk3s-abort-watch")
        self._thread.start()
        return self

    def stop(self, wait: float = 10) -> None:
        """No more polls, nor on_abort calls; wait that long for a poll
        in flight (0: not at all; one against an API that hangs lasts
        its client's retries, and the thread is a daemon)."""
        self._stop.set()
        if self._thread is not None and wait > 0:
            self._thread.join(timeout=wait)

    def check_once(self) -> dict | None:
        """Read the switch now; the abort if it is set (None if not, or
        if the API does not answer)."""
        try:
            found = consent.read_consent(self.kube, POLL_TIMEOUT)
        except KubeError as exc:
            logger.debug("chaosk3s: abort watch: %s", exc)
            return None
        return abort_reason(found, self.cluster)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            found = self.check_once()
            if found is not None and not self._stop.is_set():
                self.seen = {**found, "seen_at": consent.now()}
                logger.warning("chaosk3s: the abort switch of cluster %s "
                               "is set (%s): healing and stopping the run",
                               self.cluster, consent.describe_abort(found))
                try:
                    self.on_abort(self.seen)
                except Exception:  # noqa: BLE001 - logged; the run ends
                    logger.exception("chaosk3s: acting on the abort "
                                     "failed")
                return
            self._stop.wait(max(0.0, self.interval -
                                (time.monotonic() - started)))
