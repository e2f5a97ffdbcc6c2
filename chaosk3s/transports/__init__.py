"""How a command reaches a node: ``netns`` (the lab) or ``ssh``."""

from chaosk3s.transports.base import (
    Command,
    NodeUnreachable,
    Result,
    Transport,
    transport_for,
)
from chaosk3s.transports.netns import NetnsTransport
from chaosk3s.transports.ssh import SshTransport, close_all

__all__ = ["Command", "NetnsTransport", "NodeUnreachable", "Result",
           "SshTransport", "Transport", "close_all", "transport_for"]
