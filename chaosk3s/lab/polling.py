"""The lab's one wait: poll a check until it holds or a deadline passes."""

import time
from collections.abc import Callable
from typing import TypeVar

from chaosk3s.errors import LabStateError

T = TypeVar("T")


def poll_until(check: Callable[[], T], deadline: float,
               failure: Callable[[], str], interval: float = 0.05) -> T:
    """check() until it returns something truthy, which is returned;
    LabStateError(failure()) once time.monotonic() passes deadline."""
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise LabStateError(failure())
        time.sleep(interval)
