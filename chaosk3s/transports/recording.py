"""A transport that answers from Python and records every command.

For tests without root or nodes, the way httpx tests its clients through
a mock transport: a handler plays the node (``handler(node, command)``
returns stdout, or ``(code, stdout, stderr)``, or raises, e.g.
``NodeUnreachable``), and every call lands in ``calls`` (and in a shared
``log`` across nodes), so a test can assert what was sent, to which
node, in which order.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from chaosk3s.transports.base import (
    DEFAULT_TIMEOUT,
    Command,
    Result,
    checked,
    shown,
)

Answer = str | tuple[int, str, str]
Handler = Callable[[str, Command], Answer]


@dataclass(frozen=True)
class Call:
    node: str
    command: Command
    description: str | None
    at: float  # time.monotonic()

    @property
    def text(self) -> str:
        return self.command if isinstance(self.command, str) else \
            " ".join(self.command)


class RecordingTransport:
    """Runs nothing: asks handler what node would answer, records it."""

    def __init__(self, node: str, handler: Handler,
                 log: list[Call] | None = None, kind: str = "recording",
                 management_port: int | None = None):
        self.node = node
        self.kind = kind
        self.management_port = management_port
        self.handler = handler
        self.calls: list[Call] = []
        self.log = log if log is not None else []
        self._lock = threading.Lock()

    def run(self, command: Command, timeout: float = DEFAULT_TIMEOUT,
            check: bool = True, input: str | None = None,
            description: str | None = None) -> Result:
        call = Call(self.node, command, description, time.monotonic())
        with self._lock:
            self.calls.append(call)
            self.log.append(call)
        started = time.monotonic()
        answer = self.handler(self.node, command)
        code, out, err = (0, answer, "") if isinstance(answer, str) \
            else answer
        result = Result(self.node, shown(command, description), code, out,
                        err, time.monotonic() - started)
        return checked(result) if check else result

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"RecordingTransport({self.node!r})"
