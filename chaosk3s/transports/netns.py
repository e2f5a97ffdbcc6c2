"""The lab transport: ``ip netns exec`` into a node's network namespace.

It uses no network, so no fault can cut it; the node shares the host's
filesystem and process table (state files must carry the node's name).
"""

import shutil

from chaosk3s.transports.base import (
    DEFAULT_TIMEOUT,
    Command,
    NodeUnreachable,
    Result,
    checked,
    run_local,
)

_MISSING = "Cannot open network namespace"


class NetnsTransport:
    """Runs commands inside namespace ``namespace`` as node ``node``."""

    kind = "netns"
    management_port: int | None = None

    def __init__(self, node: str, namespace: str):
        self.node = node
        self.namespace = namespace
        self._ip = shutil.which("ip") or "/usr/sbin/ip"

    def argv(self, command: Command) -> list[str]:
        """The local argv that runs command in the namespace."""
        inner = (["sh", "-c", command] if isinstance(command, str)
                 else list(command))
        return [self._ip, "netns", "exec", self.namespace, *inner]

    def run(self, command: Command, timeout: float = DEFAULT_TIMEOUT,
            check: bool = True, input: str | None = None,
            description: str | None = None) -> Result:
        result = run_local(self.node, self.argv(command), command, timeout,
                           input, description)
        if result.code != 0 and _MISSING in result.stderr:
            raise NodeUnreachable(self.node, f"namespace {self.namespace}",
                                  result.stderr)
        return checked(result) if check else result

    def close(self) -> None:
        """Nothing to release: every command is its own process."""

    def __repr__(self) -> str:
        return f"NetnsTransport({self.node!r}, {self.namespace!r})"

