"""Apply and heal of one run, serialized (for the FaultSession).

Applies run together (each counted in flight); a heal walk waits for
the applies in flight to land (at most `wait` seconds), and applies wait
for a heal; never two walks at once. Once closed (SIGTERM, cleanup),
nothing new is applied, but healing operations still run.
"""

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from chaosk3s.errors import ChaosK3sError

logger = logging.getLogger("chaostoolkit")


class Serial:
    def __init__(self):
        self._cv = threading.Condition()
        self._in_flight = 0
        self._healing = False
        self.closed = False

    @contextmanager
    def applying(self, healing_op: bool = False) -> Iterator[None]:
        with self._cv:
            while self._healing:
                self._cv.wait()
            if self.closed and not healing_op:
                raise ChaosK3sError(
                    "refused: this run is being healed (interrupted or "
                    "ending); nothing new is injected and nothing was "
                    "changed")
            self._in_flight += 1
        try:
            yield
        finally:
            with self._cv:
                self._in_flight -= 1
                self._cv.notify_all()

    @contextmanager
    def exclusive(self, wait: float) -> Iterator[None]:
        deadline = time.monotonic() + wait
        with self._cv:
            while self._healing or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    logger.warning("chaosk3s: healing while %d apply(s) "
                                   "still run after %gs", self._in_flight,
                                   wait)
                    break
                self._cv.wait(left)
            while self._healing:  # never two walks at once
                self._cv.wait()
            self._healing = True
        try:
            yield
        finally:
            with self._cv:
                self._healing = False
                self._cv.notify_all()

    def close(self) -> None:
        """Refuse new faults from now on (heals still run)."""
        with self._cv:
            self.closed = True

