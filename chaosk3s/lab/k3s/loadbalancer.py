"""The K3s agent load balancer (127.0.0.1:6444), per release family.

A plain TCP proxy that does not balance: every new connection goes to one
selected server, and the rules that select it, and that close connections
to force clients elsewhere, are what #11311 is about
(docs/k3s-behaviour.md, "Load balancer"). Those rules live in lb_servers, per
release family; this module proxies, runs the health loop, keeps the state
file (F1, R2) and bounds dials (B8, F7).
"""

import asyncio
import json
import logging
from pathlib import Path

from chaosk3s.lab.k3s.context import LB_PORT
from chaosk3s.lab.k3s.lb_servers import Conn, Server, new_servers
from chaosk3s.lab.releases import BUGGY, REWORK
from chaosk3s.lab.spec import Timings

SERVICE = "k3s-agent-load-balancer"
_CHUNK = 64 * 1024


def _go_list(addresses: list[str]) -> str:
    return "[" + " ".join(addresses) + "]"  # Go's %v of a []string


class LoadBalancer:
    """The agent load balancer of one node; see the module docstring."""

    def __init__(self, default_server: str, family: str, timings: Timings,
                 state_file: Path | None, log: logging.Logger,
                 listen: tuple[str, int] = ("127.0.0.1", LB_PORT),
                 name: str = SERVICE):
        self._servers = new_servers(family, default_server, log, name)
        self._log = log
        self._timings, self._file, self._listen = timings, state_file, listen
        self._tasks: set[asyncio.Task] = set()
        self._listener: asyncio.Server | None = None
        self._health_task: asyncio.Task | None = None
        self._load_state()

    # -- public API -------------------------------------------------------

    @property
    def family(self) -> str:
        return self._servers.family

    @property
    def name(self) -> str:
        return self._servers.name

    @property
    def default(self) -> str:
        return self._servers.default

    @property
    def addresses(self) -> list[str]:
        """The listed servers (K3s ServerAddresses), sorted."""
        return list(self._servers.addresses)

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
                       _go_list(self.addresses), self.default)

    async def close(self) -> None:
        if self._listener:
            self._listener.close()
        tasks = [*self._tasks, *([self._health_task] if self._health_task
                                 else [])]
        for task in tasks:
            task.cancel()
        for server in self._servers.by_address.values():
            for conn in list(server.conns):
                conn.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._listener:
            await self._listener.wait_closed()

    def update(self, addresses: list[str]) -> None:
        """K3s proxy.Update: empty lists and unchanged sets are ignored."""
        if not self._servers.set_servers(addresses):
            return
        self._log.info(
            "Updated load balancer %s server addresses -> %s [default: %s]",
            self.name, _go_list(self.addresses), self.default)
        self._write_state()

    def set_default(self, address: str) -> None:
        """K3s SetDefault (SetSupervisorDefault on the first etcd node)."""
        self._servers.set_default(address)
        if self.family == REWORK:
            self._log.info("Updated load balancer %s default server: %s",
                           self.name, address)
            self._write_state()
        else:
            self._log.info("Updated load balancer %s default server "
                           "address -> %s", self.name, address)

    def set_health(self, address: str, ok: bool | None) -> None:
        """The tunnel's state: None when it starts, then True/False."""
        self._servers.set_health(address, ok)

    def snapshot(self) -> dict:
        servers = {
            s.address: {
                "state": self._servers.state_name(s),
                "healthy": s.check(), "connections": len(s.conns),
                "default": s.address == self.default,
                "listed": s.address in self._servers.addresses}
            for s in self._servers.by_address.values()}
        return {"name": self.name, "family": self.family,
                "listen": self.listen_address, "default": self.default,
                "addresses": self.addresses,
                "current": self._servers.current(), "servers": servers}

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
                    writer: asyncio.StreamWriter) -> Conn:
        return await self._servers.dial(
            lambda server: self._connect(server, reader, writer))

    async def _connect(self, server: Server, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> Conn:
        host, _, port = server.address.rpartition(":")
        dial = asyncio.open_connection(host, int(port))
        if self.family == BUGGY:  # @PRE: net.Dialer{} with no timeout (B8)
            server_r, server_w = await dial
        else:
            server_r, server_w = await asyncio.wait_for(
                dial, self._timings.lb_dial_timeout)
        conn = Conn(reader, writer, server_r, server_w, server)
        server.conns.add(conn)
        return conn

    async def _pipe(self, conn: Conn) -> None:
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
                    conn: Conn) -> None:
        try:
            while data := await src.read(_CHUNK):
                dst.write(data)
                await dst.drain()
        except (OSError, RuntimeError):
            pass  # the other side went away; closing below ends both
        finally:
            conn.close()

    # -- health loop and state file -------------------------------------------

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self._timings.lb_health_interval)
            try:
                self._servers.health()
            except Exception:  # one bad pass must not end health checking
                self._log.exception("Load balancer %s health check failed",
                                    self.name)

    def _state_doc(self) -> dict:
        doc: dict = {"ServerURL": f"https://{self.default}",
                     "ServerAddresses": self.addresses}
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
        url = f"https://{self.default}"
        if isinstance(doc, dict) and doc.get("ServerURL") == url and (
                isinstance(doc.get("ServerAddresses"), list)):
            addresses = [str(a) for a in doc["ServerAddresses"]]
            if self.family == REWORK:
                self.update(addresses)  # @RW: lb.Update, which rewrites it
            else:
                self._servers.set_servers(addresses)
            return
        self._write_state()
