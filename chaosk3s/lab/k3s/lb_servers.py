"""The load balancer's servers and the rules that pick one, per release
family (docs/k3s-behaviour.md, "Load balancer": B1-B8, F2, F3, R1), as
K3s keeps them in servers.go beside loadbalancer.go.

- buggy (@PRE): a shuffled list with the default appended last, a sticky
  "current" pointer, a second dial lap that ignores health. The default has
  no tunnel, so it is always healthy and nothing ever moves clients off it.
- fix1: the default (when not listed) always fails its health check and
  its connections are closed every health tick while a listed server is
  healthy.
- rework: a server state machine, servers tried in state order.
"""

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum

from chaosk3s.lab.releases import BUGGY, FIX1, REWORK

# K3s demotes an undialed PREFERRED server after one real minute; the lab
# keeps the real value (it only orders servers, it never closes anything).
PREFERRED_TIMEOUT = 60.0
HealthCheck = Callable[[], bool | None]
_DIAL, _HEALTH = "dial", "health check"  # K3s's transition reasons


class State(IntEnum):
    """@RW server states; a higher value is dialed first."""

    INVALID = 0
    FAILED = 1
    STANDBY = 2
    UNCHECKED = 3
    RECOVERING = 4
    HEALTHY = 5
    PREFERRED = 6
    ACTIVE = 7


class AllServersFailed(ConnectionError):
    pass


@dataclass(eq=False)
class Conn:
    """One proxied connection: the client side and the server side."""

    client_r: asyncio.StreamReader
    client_w: asyncio.StreamWriter
    server_r: asyncio.StreamReader
    server_w: asyncio.StreamWriter
    server: "Server"

    def close(self) -> None:
        self.client_w.close()
        self.server_w.close()


@dataclass(eq=False)
class Server:
    address: str
    check: HealthCheck
    state: State = State.UNCHECKED
    is_default: bool = False
    since: float = field(default_factory=time.monotonic)
    conns: set[Conn] = field(default_factory=set)

    def __str__(self) -> str:  # K3s: "10.0.0.3:6443@STANDBY*"
        return f"{self.address}@{self.state.name}" + (
            "*" if self.is_default else "")


Connect = Callable[[Server], Awaitable[Conn]]


def _always(result: bool | None) -> HealthCheck:
    return lambda: result


class Servers:
    """What every family keeps: the servers by address, the listed ones
    (K3s ServerAddresses, sorted), the default and the tunnels' state."""

    def __init__(self, family: str, default: str, log: logging.Logger,
                 name: str):
        self.family, self.default, self.log, self.name = (
            family, default, log, name)
        self.by_address: dict[str, Server] = {}
        self.addresses: list[str] = []
        self.tunnel: dict[str, bool | None] = {}

    def set_servers(self, addresses: list[str]) -> bool:
        """K3s setServers; False when empty or unchanged (ignored)."""
        wanted = sorted({a for a in addresses if a})
        if not wanted or set(wanted) == set(self.addresses):
            return False
        added = [a for a in wanted if a not in self.addresses]
        removed = [a for a in self.addresses if a not in wanted]
        for address in added:
            self.log.info("Adding server to load balancer %s: %s",
                          self.name, address)
        for address in removed:
            self.log.info("Removing server from load balancer %s: %s",
                          self.name, address)
        self.addresses = wanted
        self._apply(added, removed)
        return True

    def set_health(self, address: str, ok: bool | None) -> None:
        """The tunnel's state: None when it starts, then True/False."""
        self.tunnel[address] = ok
        if ok is not None:
            return
        server = self.by_address.get(address)  # a tunnel start
        if server is None:
            self.log.error("Failed to add health check for load balancer "
                           "%s: no server found for %s", self.name, address)
            return
        server.check = self._tunnel_check(address)

    def close_all(self, server: Server) -> None:
        if not server.conns:
            return
        shown = str(server) if self.state_name(server) else server.address
        self.log.info("Closing %d connections to load balancer server %s",
                      len(server.conns), shown)
        for conn in list(server.conns):
            conn.close()
        server.conns.clear()

    # -- what each family does its own way ---------------------------------
    def _apply(self, added: list[str], removed: list[str]) -> None:
        raise NotImplementedError

    def set_default(self, address: str) -> None:
        raise NotImplementedError

    def _tunnel_check(self, address: str) -> HealthCheck:
        raise NotImplementedError

    async def dial(self, connect: Connect) -> Conn:
        raise NotImplementedError

    def health(self) -> None:
        raise NotImplementedError

    def current(self) -> str:
        raise NotImplementedError

    def state_name(self, server: Server) -> str | None:
        """The server's state, in families that have states."""
        return None


class PreServers(Servers):
    """buggy and fix1: a shuffled dial order and a sticky current."""

    def __init__(self, family: str, default: str, log: logging.Logger,
                 name: str):
        super().__init__(family, default, log, name)
        self._random: list[str] = []  # the dial order
        self._current, self._next = "", 0
        self._previous: dict[str, bool] = {}
        self.set_servers([default])

    def _apply(self, added: list[str], removed: list[str]) -> None:
        for address in added:  # K3s makes a new entry; keep its conns
            server = self.by_address.setdefault(
                address, Server(address, _always(True)))
            server.check = _always(True)
        for address in removed:
            server = self.by_address.get(address)
            if server is not None:
                self.close_all(server)
                if address != self.default:  # kept as the fallback
                    del self.by_address[address]
        self._random = random.sample(self.addresses, len(self.addresses))
        if self.default not in self.addresses:
            self._random.append(self.default)
            default = self.by_address.get(self.default)
            if self.family == FIX1 and default is not None:
                default.check = _always(False)
        self._current, self._next = self._random[0], 1

    def set_default(self, address: str) -> None:
        old = self.by_address.get(self.default)
        if old is not None and self.default not in self.addresses:
            self.close_all(old)
            del self.by_address[self.default]
        if address not in self.by_address:
            # fix1 adds a new default failing, so it is a last resort only
            self.by_address[address] = Server(
                address, _always(self.family == BUGGY))
        self.default = address

    def _tunnel_check(self, address: str) -> HealthCheck:
        # @PRE/@FIX1 assume the tunnel is up until it is known to be down
        return lambda: self.tunnel.get(address) is not False

    async def dial(self, connect: Connect) -> Conn:
        """From current on; a second lap ignores health and closes
        nothing."""
        ignore_health, start, failed = False, self._next, []
        try:
            for _ in range(4 * len(self._random) + 4):  # two laps at most
                target = self._current
                server = self.by_address.get(target)
                if server is not None and (ignore_health or server.check()):
                    try:
                        return await connect(server)
                    except OSError as exc:  # TimeoutError included
                        self.log.debug("Dial error from load balancer %s: "
                                       "%s", self.name, exc)
                        if not ignore_health:
                            failed.append(server)
                elif server is not None:
                    self.log.debug("Dial health check failed for %s", target)
                if self._next_server(target) != target:
                    self.log.debug("Failed over to new server for load "
                                   "balancer %s: %s -> %s", self.name,
                                   target, self._current)
                start = min(start, len(self._random))
                if self._next == start:
                    if ignore_health:
                        break
                    ignore_health = True
            raise AllServersFailed("all servers failed")
        finally:
            for server in failed:  # Go defers these to the end of the dial
                self.close_all(server)

    def _next_server(self, failed: str) -> str:
        """Advance current only if the failed server is still current."""
        if len(self._random) <= 1 or failed != self._current:
            return self._current
        if self._next >= len(self._random):
            self._next = 0
        self._current = self._random[self._next]
        self._next += 1
        return self._current

    def health(self) -> None:
        healthy_exists, closing = False, []
        for address, server in list(self.by_address.items()):
            status = bool(server.check())
            healthy_exists = healthy_exists or status
            if not status and self._previous.get(address):
                closing.append(server)  # only on healthy -> unhealthy
            self._previous[address] = status
        default = self.by_address.get(self.default)
        if (self.family == FIX1 and healthy_exists and default is not None
                and self.default not in self.addresses):
            closing.append(default)  # the forced fail-back, every tick
        for server in closing:
            self.close_all(server)

    def current(self) -> str:
        return self._current


class ReworkServers(Servers):
    """rework: a state per server; dials go in state order."""

    def __init__(self, family: str, default: str, log: logging.Logger,
                 name: str):
        super().__init__(family, default, log, name)
        self.set_default(default)

    def state_name(self, server: Server) -> str | None:
        return server.state.name

    def _sorted(self) -> list[Server]:
        return sorted(self.by_address.values(),
                      key=lambda s: (-s.state, -len(s.conns)))

    def current(self) -> str:
        order = [s for s in self._sorted() if s.state != State.INVALID]
        return order[0].address if order else ""

    async def dial(self, connect: Connect) -> Conn:
        """Servers in state order; STANDBY comes before FAILED."""
        for server in self._sorted():
            if server.state == State.INVALID:
                continue
            try:
                conn = await connect(server)
            except OSError as exc:  # TimeoutError included
                self.log.debug("Dial error from server %s: %s", server, exc)
                self._record_failure(server, _DIAL)
                continue
            self._record_success(server, _DIAL)
            return conn
        raise AllServersFailed("all servers failed")

    def _apply(self, added: list[str], removed: list[str]) -> None:
        for address in added:
            server = self.by_address.get(address)
            if server is None:
                self.by_address[address] = Server(address, _always(None))
            elif server.state == State.STANDBY:  # the default, now listed
                self._set_state(server, State.UNCHECKED)
        for address in removed:
            server = self.by_address[address]
            self._set_state(server, State.STANDBY if server.is_default
                            else State.INVALID)
            self.close_all(server)
            if not server.is_default:
                del self.by_address[address]

    def set_default(self, address: str) -> None:
        old = self.by_address.get(self.default)
        if old is not None and self.default != address:
            old.is_default = False
            if old.state == State.STANDBY:  # not listed: drop it
                self._set_state(old, State.INVALID)
                self.close_all(old)
                del self.by_address[old.address]
        server = self.by_address.get(address)
        if server is None:
            server = self.by_address[address] = Server(
                address, _always(None), State.STANDBY)
        server.is_default = True
        self.default = address

    def _tunnel_check(self, address: str) -> HealthCheck:
        return lambda: self.tunnel.get(address)  # unknown until connected

    def health(self) -> None:
        for server in self._sorted():
            result = server.check()
            if result is True:
                self._record_success(server, _HEALTH)
            elif result is False:
                self._record_failure(server, _HEALTH)

    def _record_success(self, server: Server, reason: str) -> None:
        if self.by_address.get(server.address) is not server:
            return  # removed while a dial was under way
        new, state = None, server.state
        if state in (State.FAILED, State.UNCHECKED):
            new = State.RECOVERING
        elif state == State.RECOVERING and reason == _HEALTH:
            new = State.ACTIVE if server.conns else State.PREFERRED
        elif state in (State.HEALTHY, State.PREFERRED) and reason == _DIAL:
            new = State.ACTIVE
        elif state == State.PREFERRED and (
                time.monotonic() - server.since > PREFERRED_TIMEOUT):
            new = State.HEALTHY
        if new is None:
            return
        closing: list[Server] = []
        if new == State.ACTIVE:
            new = self._claim_active(server, closing)
        self._transition(server, new, f"successful {reason}")
        for other in closing:
            self.close_all(other)

    def _claim_active(self, server: Server, closing: list[Server]) -> State:
        """A new ACTIVE server closes the others' connections (R1, R6)."""
        new = State.ACTIVE
        for other in self.by_address.values():
            if other is server:
                continue
            if other.state in (State.FAILED, State.STANDBY,
                               State.RECOVERING, State.HEALTHY):
                closing.append(other)
            elif other.state == State.ACTIVE:
                if len(other.conns) > len(server.conns):
                    new = State.PREFERRED  # the busier one stays ACTIVE
                    closing.append(server)
                else:
                    self._set_state(other, State.PREFERRED)
                    closing.append(other)
        return new

    def _record_failure(self, server: Server, reason: str) -> None:
        if self.by_address.get(server.address) is not server:
            return
        if server.state in (State.HEALTHY, State.PREFERRED, State.ACTIVE) or (
                server.state in (State.UNCHECKED, State.RECOVERING)
                and reason == _DIAL):
            self._transition(server, State.FAILED, f"failed {reason}")
            self.close_all(server)

    def _transition(self, server: Server, new: State, why: str) -> None:
        self.log.info("Server %s->%s from %s", server, new.name, why)
        self._set_state(server, new)

    @staticmethod
    def _set_state(server: Server, new: State) -> None:
        server.state, server.since = new, time.monotonic()


def new_servers(family: str, default: str, log: logging.Logger,
                name: str) -> Servers:
    if family not in (BUGGY, FIX1, REWORK):
        raise ValueError(f"unknown release family {family!r}")
    kind = ReworkServers if family == REWORK else PreServers
    return kind(family, default, log, name)
