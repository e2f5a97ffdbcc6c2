"""What every transport offers: run a script or an argv on one node.

A transport carries commands and nothing else: no fault logic lives here.
A *script* (a ``str``) runs under ``sh -c`` on the node; an *argv* (a
list) runs as is. Failures raise ``CommandFailed`` naming the node, the
command, the exit code and stderr; a node that cannot be reached at all
raises ``NodeUnreachable`` (a ``CommandFailed`` with exit code 255).
"""

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from chaosk3s.errors import (  # NodeUnreachable: the transports raise it
    CommandFailed,
    NodeUnreachable,  # noqa: F401
    SpecError,
)
from chaosk3s.model import Node

Command = str | Sequence[str]
DEFAULT_TIMEOUT = 30.0  # seconds; a partition script takes well under 1 s
SHOWN_SCRIPT_CHARS = 200  # errors quote a long script's start, not all


@dataclass(frozen=True)
class Result:
    """What one command did on one node."""

    node: str
    command: str
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.code == 0


@runtime_checkable
class Transport(Protocol):
    """How commands reach one node.

    ``kind`` is the transport's name (``netns``, ``ssh``);
    ``management_port`` the TCP port the transport itself uses on the
    node (None when it uses no network), which faults must keep open.
    """

    node: str
    kind: str
    management_port: int | None

    def run(self, command: Command, timeout: float = DEFAULT_TIMEOUT,
            check: bool = True, input: str | None = None,
            description: str | None = None) -> Result:
        """Run command on the node; raise CommandFailed if check and the
        exit code is not 0. description replaces the command in errors."""
        ...

    def close(self) -> None:
        """Release connections; the transport may be used again after."""
        ...


def shown(command: Command, description: str | None = None) -> str:
    """The command as errors and results show it (long scripts cut)."""
    if description:
        return description
    if isinstance(command, str):
        text = command.strip()
        if len(text) > SHOWN_SCRIPT_CHARS:
            return text[:SHOWN_SCRIPT_CHARS] + f"... ({len(text)} chars)"
        return text
    return " ".join(command)


def run_local(node: str, argv: list[str], command: Command, timeout: float,
              input: str | None, description: str | None) -> Result:
    """Run a local argv that carries command to node; a timeout or a
    missing binary is CommandFailed, any exit code is the caller's to
    judge (the transport first tells its own failures apart)."""
    label = shown(command, description)
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True,
                              check=False, timeout=timeout, input=input,
                              stdin=None if input is not None
                              else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(node, label, -1,
                            f"timed out after {timeout:g}s") from exc
    except FileNotFoundError as exc:
        raise CommandFailed(node, label, 127,
                            f"{exc.filename} is not installed") from exc
    return Result(node, label, proc.returncode, proc.stdout, proc.stderr,
                  time.monotonic() - started)


def checked(result: Result) -> Result:
    """result itself, or CommandFailed if it did not exit 0."""
    if result.code != 0:
        raise CommandFailed(result.node, result.command, result.code,
                            result.stderr)
    return result


def transport_for(node: Node, **ssh_options: object) -> Transport:
    """The transport that reaches node, from its inventory access.

    ssh_options go to SshTransport (connect_timeout, control_persist).
    """
    # Imported here: the concrete transports import this module.
    from chaosk3s.transports.netns import NetnsTransport
    from chaosk3s.transports.ssh import SshTransport

    access = node.access
    if access is None:
        raise SpecError(f"node {node.name}: the inventory says nothing "
                        f"about how to reach it (transport netns or ssh)")
    if access.transport == "netns":
        if not access.namespace:
            raise SpecError(f"node {node.name}: transport netns needs a "
                            f"namespace")
        return NetnsTransport(node.name, access.namespace)
    if access.transport == "ssh":
        return SshTransport(node.name, access, **ssh_options)
    raise SpecError(f"node {node.name}: unknown transport "
                    f"{access.transport!r}; use netns or ssh")
