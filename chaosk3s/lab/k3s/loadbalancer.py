"""The K3s agent load balancer (127.0.0.1:6444), per release family.

A plain TCP proxy that does not balance: every new connection goes to one
selected server, and the rules that select it, and that close connections
to force clients elsewhere, are what #11311 is about
(../shared/k3s-behaviour.md 1.2-1.6; B1-B8, F1-F3, F7, R1, R2, R6):

- buggy (@PRE): a shuffled list with the default appended last, a sticky
  "current" pointer, a second dial lap that ignores health. The default has
  no tunnel, so it is always healthy and nothing ever moves clients off it.
- fix1: the default (when not listed) always fails its health check and
  its connections are closed every health tick while a listed server is
  healthy; dials time out.
- rework: a server state machine, servers tried in state order.
"""

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from chaosk3s.lab.releases import BUGGY, FIX1, REWORK
from chaosk3s.lab.spec import Timings

SERVICE = "k3s-agent-load-balancer"
# K3s demotes an undialed PREFERRED server after one real minute; the lab
# keeps the real value (it only orders servers, it never closes anything).
PREFERRED_TIMEOUT = 60.0
_CHUNK = 64 * 1024
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
class _Conn:
    """One proxied connection: the client side and the server side."""

    client_r: asyncio.StreamReader
    client_w: asyncio.StreamWriter
    server_r: asyncio.StreamReader
    server_w: asyncio.StreamWriter
    server: "_Server"

    def close(self) -> None:
        self.client_w.close()
        self.server_w.close()


@dataclass(eq=False)
class _Server:
    address: str
    check: HealthCheck
    state: State = State.UNCHECKED
    is_default: bool = False
    since: float = field(default_factory=time.monotonic)
    conns: set[_Conn] = field(default_factory=set)

    def __str__(self) -> str:  # K3s: "10.0.0.3:6443@STANDBY*"
        return f"{self.address}@{self.state.name}" + (
            "*" if self.is_default else "")


def _always(result: bool | None) -> HealthCheck:
    return lambda: result


def _go_list(addresses: list[str]) -> str:
    return "[" + " ".join(addresses) + "]"  # Go's %v of a []string


class LoadBalancer:
    """The agent load balancer of one node; see the module docstring."""

    def __init__(self, default_server: str, family: str, timings: Timings,
                 state_file: Path | None, log: logging.Logger,
                 listen: tuple[str, int] = ("127.0.0.1", 6444),
                 name: str = SERVICE):
        if family not in (BUGGY, FIX1, REWORK):
            raise ValueError(f"unknown release family {family!r}")
        self.family, self.name, self._log = family, name, log
        self._timings, self._file, self._listen = timings, state_file, listen
        self._default = default_server
        self._servers: dict[str, _Server] = {}
        self._addresses: list[str] = []  # the sorted, listed servers
        self._random: list[str] = []  # @PRE/@FIX1 dial order
        self._current, self._next = "", 0
        self._tunnel: dict[str, bool | None] = {}
        self._previous: dict[str, bool] = {}
        self._tasks: set[asyncio.Task] = set()
        self._listener: asyncio.Server | None = None
        self._health_task: asyncio.Task | None = None
        self._init_servers()
        self._load_state()

    # -- public API -------------------------------------------------------

    @property
    def default(self) -> str:
        return self._default

    @property
    def addresses(self) -> list[str]:
        """The listed servers (K3s ServerAddresses), sorted."""
        return list(self._addresses)

    @property
    def listen_address(self) -> str:
        sock = self._listener.sockets[0] if self._listener else None
        host, port = sock.getsockname()[:2] if sock else self._listen
        return f"{host}:{port}"

    async def start(self) -> None:
        host, port = self._listen
        self._listener = await asyncio.start_server(self._handle, host, port)
        self._health_task = asyncio.create_task(self._health_loop())
        self._log.info("Running load balancer %s %s -> %s [default: %s]",
                       self.name, self.listen_address,
                       _go_list(self._addresses), self._default)

    async def close(self) -> None:
        if self._listener:
            self._listener.close()
        tasks = [*self._tasks, *([self._health_task] if self._health_task
                                 else [])]
        for task in tasks:
            task.cancel()
        for server in self._servers.values():
            for conn in list(server.conns):
                conn.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._listener:
            await self._listener.wait_closed()

    def update(self, addresses: list[str]) -> None:
        """K3s proxy.Update: empty lists and unchanged sets are ignored."""
        if not self._set_servers(addresses):
            return
        self._log.info(
            "Updated load balancer %s server addresses -> %s [default: %s]",
            self.name, _go_list(self._addresses), self._default)
        self._write_state()

    def set_default(self, address: str) -> None:
        """K3s SetDefault (SetSupervisorDefault on the first etcd node)."""
        if self.family == REWORK:
            self._rw_set_default(address)
            self._log.info("Updated load balancer %s default server: %s",
                           self.name, address)
            self._write_state()
            return
        old = self._servers.get(self._default)
        if old is not None and self._default not in self._addresses:
            self._close_all(old)
            del self._servers[self._default]
        if address not in self._servers:
            # fix1 adds a new default failing, so it is a last resort only
            self._servers[address] = _Server(
                address, _always(self.family == BUGGY))
        self._default = address
        self._log.info("Updated load balancer %s default server address -> "
                       "%s", self.name, address)

    def set_health(self, address: str, ok: bool | None) -> None:
        """The tunnel's state: None when it starts, then True/False."""
        self._tunnel[address] = ok
        if ok is not None:
            return
        server = self._servers.get(address)  # a tunnel start: SetHealthCheck
        if server is None:
            self._log.error("Failed to add health check for load balancer "
                            "%s: no server found for %s", self.name, address)
            return
        server.check = self._tunnel_check(address)

    def snapshot(self) -> dict:
        servers = {
            s.address: {
                "state": s.state.name if self.family == REWORK else None,
                "healthy": s.check(), "connections": len(s.conns),
                "default": s.address == self._default,
                "listed": s.address in self._addresses}
            for s in self._servers.values()}
        return {"name": self.name, "family": self.family,
                "listen": self.listen_address, "default": self._default,
                "addresses": list(self._addresses),
                "current": self._current_server(), "servers": servers}

    # -- server list ------------------------------------------------------

    def _init_servers(self) -> None:
        if self.family == REWORK:
            self._rw_set_default(self._default)
        else:
            self._set_servers([self._default])

    def _set_servers(self, addresses: list[str]) -> bool:
        wanted = sorted({a for a in addresses if a})
        if not wanted or set(wanted) == set(self._addresses):
            return False
        added = [a for a in wanted if a not in self._addresses]
        removed = [a for a in self._addresses if a not in wanted]
        for address in added:
            self._log.info("Adding server to load balancer %s: %s",
                           self.name, address)
        for address in removed:
            self._log.info("Removing server from load balancer %s: %s",
                           self.name, address)
        self._addresses = wanted
        if self.family == REWORK:
            self._rw_set_servers(added, removed)
        else:
            self._pre_set_servers(added, removed)
        return True

    def _pre_set_servers(self, added: list[str], removed: list[str]) -> None:
        for address in added:  # K3s makes a new entry; keep its conns
            server = self._servers.setdefault(
                address, _Server(address, _always(True)))
            server.check = _always(True)
        for address in removed:
            server = self._servers.get(address)
            if server is not None:
                self._close_all(server)
                if address != self._default:  # kept as the fallback
                    del self._servers[address]
        self._random = random.sample(self._addresses, len(self._addresses))
        if self._default not in self._addresses:
            self._random.append(self._default)
            default = self._servers.get(self._default)
            if self.family == FIX1 and default is not None:
                default.check = _always(False)
        self._current, self._next = self._random[0], 1

    def _tunnel_check(self, address: str) -> HealthCheck:
        if self.family == REWORK:  # tri-state: unknown until connected
            return lambda: self._tunnel.get(address)
        # @PRE/@FIX1 assume the tunnel is up until it is known to be down
        return lambda: self._tunnel.get(address) is not False

    def _current_server(self) -> str:
        if self.family != REWORK:
            return self._current
        order = [s for s in self._sorted() if s.state != State.INVALID]
        return order[0].address if order else ""

    # -- dialing and proxying ---------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            try:
                conn = await self._dial(reader, writer)
            except OSError as exc:  # TimeoutError included
                self._log.debug("Incoming conn %s, error dialing load "
                                "balancer servers: %s",
                                writer.get_extra_info("peername"), exc)
                writer.close()
                return
            await self._pipe(conn)
        except asyncio.CancelledError:
            writer.close()  # close() ends this connection; nothing awaits it
        finally:
            self._tasks.discard(task)

    async def _dial(self, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> _Conn:
        if self.family == REWORK:
            return await self._rw_dial(reader, writer)
        return await self._pre_dial(reader, writer)

    async def _connect(self, server: _Server, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> _Conn:
        host, _, port = server.address.rpartition(":")
        dial = asyncio.open_connection(host, int(port))
        if self.family == BUGGY:  # @PRE: net.Dialer{} with no timeout (B8)
            server_r, server_w = await dial
        else:
            server_r, server_w = await asyncio.wait_for(
                dial, self._timings.lb_dial_timeout)
        conn = _Conn(reader, writer, server_r, server_w, server)
        server.conns.add(conn)
        return conn

    async def _pipe(self, conn: _Conn) -> None:
        """Copy both ways; like tcpproxy, the first end closes both."""
        back = asyncio.create_task(
            self._copy(conn.server_r, conn.client_w, conn))
        try:
            await self._copy(conn.client_r, conn.server_w, conn)
            await back
        finally:
            back.cancel()
            conn.close()
            conn.server.conns.discard(conn)

    @staticmethod
    async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    conn: _Conn) -> None:
        try:
            while data := await src.read(_CHUNK):
                dst.write(data)
                await dst.drain()
        except (OSError, RuntimeError):
            pass  # the other side went away; closing below ends both
        finally:
            conn.close()

    def _close_all(self, server: _Server) -> None:
        if not server.conns:
            return
        shown = str(server) if self.family == REWORK else server.address
        self._log.info("Closing %d connections to load balancer server %s",
                       len(server.conns), shown)
        for conn in list(server.conns):
            conn.close()
        server.conns.clear()

    # -- @PRE / @FIX1 -------------------------------------------------------

    async def _pre_dial(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> _Conn:
        """From current on; a second lap ignores health and closes nothing."""
        ignore_health, start, failed = False, self._next, []
        try:
            for _ in range(4 * len(self._random) + 4):  # two laps at most
                target = self._current
                server = self._servers.get(target)
                if server is not None and (ignore_health or server.check()):
                    try:
                        return await self._connect(server, reader, writer)
                    except OSError as exc:  # TimeoutError included
                        self._log.debug("Dial error from load balancer %s: "
                                        "%s", self.name, exc)
                        if not ignore_health:
                            failed.append(server)
                elif server is not None:
                    self._log.debug("Dial health check failed for %s", target)
                if self._next_server(target) != target:
                    self._log.debug("Failed over to new server for load "
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
                self._close_all(server)

    def _next_server(self, failed: str) -> str:
        """Advance current only if the failed server is still current."""
        if len(self._random) <= 1 or failed != self._current:
            return self._current
        if self._next >= len(self._random):
            self._next = 0
        self._current = self._random[self._next]
        self._next += 1
        return self._current

    def _pre_health(self) -> None:
        healthy_exists, closing = False, []
        for address, server in list(self._servers.items()):
            status = bool(server.check())
            healthy_exists = healthy_exists or status
            if not status and self._previous.get(address):
                closing.append(server)  # only on healthy -> unhealthy
            self._previous[address] = status
        default = self._servers.get(self._default)
        if (self.family == FIX1 and healthy_exists and default is not None
                and self._default not in self._addresses):
            closing.append(default)  # the forced fail-back, every tick
        for server in closing:
            self._close_all(server)

    # -- @RW ----------------------------------------------------------------

    def _sorted(self) -> list[_Server]:
        return sorted(self._servers.values(),
                      key=lambda s: (-s.state, -len(s.conns)))

    async def _rw_dial(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> _Conn:
        """Servers in state order; STANDBY comes before FAILED."""
        for server in self._sorted():
            if server.state == State.INVALID:
                continue
            try:
                conn = await self._connect(server, reader, writer)
            except OSError as exc:  # TimeoutError included
                self._log.debug("Dial error from server %s: %s", server, exc)
                self._record_failure(server, _DIAL)
                continue
            self._record_success(server, _DIAL)
            return conn
        raise AllServersFailed("all servers failed")

    def _rw_set_servers(self, added: list[str], removed: list[str]) -> None:
        for address in added:
            server = self._servers.get(address)
            if server is None:
                self._servers[address] = _Server(address, _always(None))
            elif server.state == State.STANDBY:  # the default, now listed
                self._set_state(server, State.UNCHECKED)
        for address in removed:
            server = self._servers[address]
            self._set_state(server, State.STANDBY if server.is_default
                            else State.INVALID)
            self._close_all(server)
            if not server.is_default:
                del self._servers[address]

    def _rw_set_default(self, address: str) -> None:
        old = self._servers.get(self._default)
        if old is not None and self._default != address:
            old.is_default = False
            if old.state == State.STANDBY:  # not listed: drop it
                self._set_state(old, State.INVALID)
                self._close_all(old)
                del self._servers[old.address]
        server = self._servers.get(address)
        if server is None:
            server = self._servers[address] = _Server(
                address, _always(None), State.STANDBY)
        server.is_default = True
        self._default = address

    def _rw_health(self) -> None:
        for server in self._sorted():
            result = server.check()
            if result is True:
                self._record_success(server, _HEALTH)
            elif result is False:
                self._record_failure(server, _HEALTH)

    def _record_success(self, server: _Server, reason: str) -> None:
        if self._servers.get(server.address) is not server:
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
        closing: list[_Server] = []
        if new == State.ACTIVE:
            new = self._claim_active(server, closing)
        self._transition(server, new, f"successful {reason}")
        for other in closing:
            self._close_all(other)

    def _claim_active(self, server: _Server, closing: list[_Server]) -> State:
        """A new ACTIVE server closes the others' connections (R1, R6)."""
        new = State.ACTIVE
        for other in self._servers.values():
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

    def _record_failure(self, server: _Server, reason: str) -> None:
        if self._servers.get(server.address) is not server:
            return
        if server.state in (State.HEALTHY, State.PREFERRED, State.ACTIVE) or (
                server.state in (State.UNCHECKED, State.RECOVERING)
                and reason == _DIAL):
            self._transition(server, State.FAILED, f"failed {reason}")
            self._close_all(server)

    def _transition(self, server: _Server, new: State, why: str) -> None:
        self._log.info("Server %s->%s from %s", server, new.name, why)
        self._set_state(server, new)

    @staticmethod
    def _set_state(server: _Server, new: State) -> None:
        server.state, server.since = new, time.monotonic()

    # -- health loop and state file -------------------------------------------

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self._timings.lb_health_interval)
            try:
                if self.family == REWORK:
                    self._rw_health()
                else:
                    self._pre_health()
            except Exception:  # one bad pass must not end health checking
                self._log.exception("Load balancer %s health check failed",
                                    self.name)

    def _state_doc(self) -> dict:
        doc: dict = {"ServerURL": f"https://{self._default}",
                     "ServerAddresses": list(self._addresses)}
        if self.family != REWORK:
            doc["Listener"] = None  # @PRE/@FIX1 marshal the whole LB struct
        return doc

    def _write_state(self) -> None:
        if self._file is None:
            return
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._file.with_name(self._file.name + ".tmp")
            tmp.write_text(json.dumps(self._state_doc(), indent=2) + "\n")
            tmp.replace(self._file)
        except OSError as exc:
            self._log.warning("Error updating load balancer %s config: %s",
                              self.name, exc)

    def _load_state(self) -> None:
        """Read once: only a file made for this default server is used."""
        doc = None
        if self._file is not None:
            try:
                doc = json.loads(self._file.read_text())
            except (OSError, ValueError):
                doc = None
        url = f"https://{self._default}"
        if isinstance(doc, dict) and doc.get("ServerURL") == url and (
                isinstance(doc.get("ServerAddresses"), list)):
            addresses = [str(a) for a in doc["ServerAddresses"]]
            if self.family == REWORK:
                self.update(addresses)  # @RW: lb.Update, which rewrites it
            else:
                self._set_servers(addresses)
            return
        self._write_state()
