"""Helpers shared by the node-side unit tests (LB, tunnel, addresses)."""

import asyncio
import logging
import time

TEST_DEADLINE = 40.0  # no scenario may hang a test run


def run(scenario) -> None:
    asyncio.run(asyncio.wait_for(scenario(), TEST_DEADLINE))


async def until(condition, timeout: float, step: float = 0.02) -> float:
    """Poll condition; return how long it took, fail after timeout."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "condition not met"
        await asyncio.sleep(step)
    return time.monotonic() - start


class Recorder(logging.Handler):
    """Keeps a logger's messages so tests can assert K3s's log lines."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def matching(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]


def make_log(name: str) -> tuple[logging.Logger, Recorder]:
    log = logging.getLogger(f"test.{name}.{time.monotonic_ns()}")
    log.setLevel(logging.DEBUG)
    recorder = Recorder()
    log.addHandler(recorder)
    return log, recorder
