"""The /v1-k3s/connect tunnel over loopback: connect, loss, black hole.

A pausable relay between client and server stands in for a black-holed
link: it stops forwarding bytes both ways without closing anything, so
only the heartbeat deadline can notice.
"""

import asyncio
import socket
import time
import warnings
from contextlib import AsyncExitStack

import aiohttp
import pytest
from aiohttp import web

from chaosk3s.lab.k3s.loadbalancer import LoadBalancer
from chaosk3s.lab.k3s.tunnel import (
    CONNECT_PATH,
    LOG_KEY,
    NODE_HEADER,
    TIMINGS_KEY,
    TunnelClient,
    connect_handler,
)
from chaosk3s.lab.releases import BUGGY, FIX1
from chaosk3s.lab.timings import Timings
from tests.unit.asynctools import Recorder, make_log, run, until

T = Timings(tunnel_ping_interval=0.25, tunnel_dead_after=1.5,
            tunnel_dial_timeout=1.0, tunnel_reconnect=0.3,
            lb_health_interval=1.0, lb_dial_timeout=2.0)

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web.NotAppKeyWarning")






def bound_socket(host: str, port: int = 0) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class Server:
    """A server node's supervisor: the tunnel endpoint and /whoami."""

    def __init__(self, name: str, host: str):
        self.name, self.host, self.port = name, host, 0
        self.log, self.rec = make_log(f"server-{name}")
        self.peers: list[str] = []
        self.ended: list[float] = []
        self._runner: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> "Server":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            app = web.Application()
            app[TIMINGS_KEY], app[LOG_KEY] = T, self.log
        app.router.add_get(CONNECT_PATH, self._connect)
        app.router.add_get("/whoami", self._whoami)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        sock = bound_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        self.peers.append(request.headers.get(NODE_HEADER, ""))
        try:
            return await connect_handler(request)
        finally:
            self.ended.append(time.monotonic())

    async def _whoami(self, _request: web.Request) -> web.Response:
        return web.Response(text=self.name)


class Relay:
    """A TCP relay that can be paused into a black hole."""

    def __init__(self, target: str):
        self._target = target.rsplit(":", 1)
        self.forwarding = asyncio.Event()
        self.forwarding.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader, writer) -> None:
        self._writers.add(writer)
        try:
            await self.forwarding.wait()
            up_r, up_w = await asyncio.open_connection(
                self._target[0], int(self._target[1]))
            self._writers.add(up_w)
            await asyncio.gather(self._copy(reader, up_w),
                                 self._copy(up_r, writer))
        except OSError:
            pass
        finally:
            writer.close()

    async def _copy(self, src, dst) -> None:
        try:
            while True:
                await self.forwarding.wait()
                data = await src.read(4096)
                await self.forwarding.wait()  # paused: hold the bytes
                if not data:
                    break
                dst.write(data)
                await dst.drain()
        except OSError:
            pass
        finally:
            dst.close()


class Health:
    """Records on_health calls with their times."""

    def __init__(self):
        self.calls: list[tuple[float, str, bool | None]] = []

    def __call__(self, address: str, ok: bool | None) -> None:
        self.calls.append((time.monotonic(), address, ok))

    def last(self, address: str) -> bool | None:
        values = [ok for _t, a, ok in self.calls if a == address]
        return values[-1] if values else "none"



async def client(stack: AsyncExitStack, on_health) -> tuple[
        TunnelClient, Recorder]:
    log, rec = make_log("client")
    tunnels = TunnelClient("agent-0", on_health, T, log)
    stack.push_async_callback(tunnels.close)
    return tunnels, rec


def test_connect_loss_and_reconnect():
    async def scenario():
        async with AsyncExitStack() as stack:
            server = await Server("C1", "127.0.0.2").start()
            stack.push_async_callback(server.stop)
            health = Health()
            tunnels, rec = await client(stack, health)
            tunnels.sync([server.address])
            assert health.calls[0][1:] == (server.address, None)
            await until(lambda: health.last(server.address) is True, 5)
            assert server.peers == ["agent-0"]
            assert rec.count("Remotedialer connected to proxy") == 1
            await server.stop()  # a closed connection: noticed at once
            await until(lambda: health.last(server.address) is False,
                        T.tunnel_dead_after / 2)
            assert rec.count("Remotedialer proxy error; reconnecting") >= 1
            await server.start()  # same port
            await until(lambda: health.last(server.address) is True, 5)
    run(scenario)


def test_black_hole_detected_at_the_read_deadline_both_ends():
    """remotedialer: a silent peer is dropped tunnel_dead_after after the
    last pong (client) or ping (server), not before."""
    async def scenario():
        async with AsyncExitStack() as stack:
            server = await Server("C1", "127.0.0.2").start()
            stack.push_async_callback(server.stop)
            relay = Relay(server.address)
            address = await relay.start()
            stack.push_async_callback(relay.stop)
            health = Health()
            tunnels, rec = await client(stack, health)
            tunnels.sync([address])
            await until(lambda: health.last(address) is True, 5)
            # pings keep it up well past the dead-after
            await asyncio.sleep(2 * T.tunnel_dead_after)
            assert health.last(address) is True and not server.ended
            relay.forwarding.clear()  # no FIN, no RST: silence
            paused = time.monotonic()
            early = T.tunnel_dead_after - T.tunnel_ping_interval - 0.1
            await asyncio.sleep(early)
            assert health.last(address) is True  # not noticed yet
            limit = T.tunnel_dead_after + 0.6 - early  # some slack
            await until(lambda: health.last(address) is False, limit)
            await until(lambda: bool(server.ended), limit)
            assert early < server.ended[0] - paused < early + limit
            # redials into the hole time out; health stays down
            await asyncio.sleep(3 * T.tunnel_dial_timeout)
            assert health.last(address) is False
            assert rec.count("Failed to connect to proxy") >= 1
            relay.forwarding.set()
            await until(lambda: health.last(address) is True, 6)
    run(scenario)


def test_sync_stops_removed_tunnels_quietly():
    async def scenario():
        async with AsyncExitStack() as stack:
            a = await Server("A", "127.0.0.2").start()
            b = await Server("B", "127.0.0.3").start()
            stack.push_async_callback(a.stop)
            stack.push_async_callback(b.stop)
            health = Health()
            tunnels, rec = await client(stack, health)
            tunnels.sync([a.address, b.address])
            await until(lambda: health.last(a.address) is True
                        and health.last(b.address) is True, 5)
            tunnels.sync([b.address])
            assert tunnels.addresses == [b.address]
            assert rec.count(f"Stopped tunnel to {a.address}") == 1
            await until(lambda: bool(a.ended), 3)  # its websocket closed
            calls = len([c for c in health.calls if c[1] == a.address])
            await asyncio.sleep(4 * T.tunnel_ping_interval)
            assert calls == len([c for c in health.calls
                                 if c[1] == a.address])
            assert health.last(b.address) is True
    run(scenario)


async def whoami(lb: LoadBalancer) -> str:
    """One request on a new connection through the LB."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector,
                                     trust_env=False) as session:
        async with session.get(f"http://{lb.listen_address}/whoami",
                               timeout=aiohttp.ClientTimeout(total=5)) as r:
            return await r.text()


async def fail_over_through_tunnels(stack: AsyncExitStack, family: str):
    """The tunnel as the LB's health check: C1 stops and comes back."""
    e1 = await Server("E1", "127.0.0.2").start()
    c1 = await Server("C1", "127.0.0.3").start()
    stack.push_async_callback(e1.stop)
    stack.push_async_callback(c1.stop)
    lb = LoadBalancer(e1.address, family, T, None, make_log("lb")[0],
                      listen=("127.0.0.1", 0))
    await lb.start()
    stack.push_async_callback(lb.close)
    tunnels, _rec = await client(stack, lb.set_health)
    lb.update([c1.address])
    tunnels.sync(lb.addresses)
    await until(lambda: lb.snapshot()["servers"][c1.address]["healthy"], 5)
    assert await whoami(lb) == "C1"
    await c1.stop()
    await until(lambda: not lb.snapshot()["servers"][c1.address]["healthy"],
                3)
    assert await whoami(lb) == "E1"
    await c1.start()
    return lb, c1, time.monotonic()


def test_fix1_fails_back_within_three_seconds_of_the_tunnel():
    async def scenario():
        async with AsyncExitStack() as stack:
            lb, c1, restarted = await fail_over_through_tunnels(stack, FIX1)
            await until(lambda: lb.snapshot()["servers"][c1.address][
                "healthy"], 5)
            reconnected = time.monotonic()
            while await whoami(lb) != "C1":
                assert time.monotonic() - reconnected < 3, "F6 violated"
                await asyncio.sleep(0.1)
            assert reconnected - restarted < T.tunnel_reconnect + 2
    run(scenario)


def test_buggy_stays_on_default_after_the_tunnel_is_back():
    async def scenario():
        async with AsyncExitStack() as stack:
            lb, c1, _restarted = await fail_over_through_tunnels(stack, BUGGY)
            await until(lambda: lb.snapshot()["servers"][c1.address][
                "healthy"], 5)
            await asyncio.sleep(3 * T.lb_health_interval)
            assert await whoami(lb) == "E1"  # B4: stuck
    run(scenario)
