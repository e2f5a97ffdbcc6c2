"""The /v1-k3s/connect websocket tunnel: its state is the LB health check.

K3s keeps one remotedialer websocket from every LB user to every listed
server (docs/k3s-behaviour.md, "Load balancer"); the load balancer reads
"is the tunnel connected" as that server's health. The lab's tunnel
carries no traffic, only pings, with remotedialer's rules: the client
pings every ``tunnel_ping_interval``; each end's read deadline is
``tunnel_dead_after`` from the last ping (server) or pong (client), so a
black hole (no FIN, no RST) is noticed only then, while a refused, reset
or closed connection is noticed at once. The client dials with
``tunnel_dial_timeout`` (0: none, so a black-holed SYN waits for the
kernel's retries, as K3s's dialer does) and redials
``tunnel_reconnect`` after a loss.

The tunnel is family-agnostic: it reports None when it starts, True on
connect and False on loss, and the load balancer decides what None means.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable

import aiohttp
from aiohttp import web

from chaosk3s.lab.timings import Timings

CONNECT_PATH = "/v1-k3s/connect"
NODE_HEADER = "X-Chaosk3s-Node"
TIMINGS_KEY = "chaosk3s.timings"  # app key the supervisor sets
LOG_KEY = "chaosk3s.log"  # optional app key: the node's logger
_END = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
        aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
_log = logging.getLogger(__name__)
HealthCallback = Callable[[str, bool | None], None]
WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


async def connect_handler(request: web.Request) -> web.WebSocketResponse:
    """Server side, on every server node (etcd-only ones included)."""
    timings: Timings = request.app.get(TIMINGS_KEY) or Timings()
    log: logging.Logger = request.app.get(LOG_KEY) or _log
    peer = request.headers.get(NODE_HEADER) or str(request.remote)
    ws = web.WebSocketResponse(autoping=False)
    await ws.prepare(request)
    log.info("Handling backend connection request [%s]", peer)
    try:
        why = await _hold(ws, timings.tunnel_dead_after,
                          aiohttp.WSMsgType.PING)
    finally:
        await _close(ws, timings.tunnel_ping_interval)
        log.info("Tunnel from %s closed", peer)
    log.debug("Tunnel from %s ended: %s", peer, why)
    return ws


async def _hold(ws: WebSocket, dead_after: float,
                keeps_alive: aiohttp.WSMsgType) -> str:
    """Until the websocket ends; return why, for the log. Only a
    ``keeps_alive`` message (a ping on the server, a pong on the client)
    moves the read deadline, as in remotedialer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + dead_after
    while True:
        left = deadline - loop.time()
        if left <= 0:
            return f"no ping or pong for {dead_after:g}s"
        try:
            msg = await ws.receive(timeout=left)
        except TimeoutError:
            continue  # the deadline check above says why
        if msg.type in _END:
            return f"websocket {msg.type.name.lower()}" + (
                f": {ws.exception()}" if ws.exception() else "")
        if msg.type == aiohttp.WSMsgType.PING:
            await ws.pong(msg.data)
        if msg.type == keeps_alive:
            deadline = loop.time() + dead_after


async def _close(ws: WebSocket, wait: float) -> None:
    """Close; the close handshake waits one ping interval at most."""
    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
        async with asyncio.timeout(wait):
            await ws.close()


async def _ping(ws: aiohttp.ClientWebSocketResponse, every: float) -> None:
    """remotedialer's client pings; a failed write ends the tunnel (a
    reset connection), a black hole does not (the write is buffered)."""
    while True:
        await asyncio.sleep(every)
        try:
            await ws.ping()
        except (aiohttp.ClientError, OSError, RuntimeError):
            await ws.close()
            return


class TunnelClient:
    """Client side: one tunnel per listed server address."""

    def __init__(self, node_name: str, on_health: HealthCallback,
                 timings: Timings, log: logging.Logger):
        self._node, self._on_health = node_name, on_health
        self._timings, self._log = timings, log
        self._tasks: dict[str, asyncio.Task] = {}
        self._session: aiohttp.ClientSession | None = None

    @property
    def addresses(self) -> list[str]:
        return sorted(self._tasks)

    def sync(self, addresses: list[str]) -> None:
        """Open tunnels to new addresses; close those no longer listed."""
        wanted = {a for a in addresses if a}
        for address in sorted(wanted - set(self._tasks)):
            self._log.info("Started tunnel to %s", address)
            self._report(address, None)
            self._tasks[address] = asyncio.create_task(self._run(address))
        for address in sorted(set(self._tasks) - wanted):
            self._tasks.pop(address).cancel()
            self._log.info("Stopped tunnel to %s", address)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _report(self, address: str, ok: bool | None) -> None:
        try:
            self._on_health(address, ok)
        except Exception:  # a broken callback must not end the tunnel
            self._log.exception("Tunnel health callback failed for %s",
                                address)

    async def _run(self, address: str) -> None:
        """remotedialer's loop: connect, hold, report, sleep, redial."""
        url = f"ws://{address}{CONNECT_PATH}"
        while True:
            ws = await self._dial(url)
            if ws is None:
                error = "dial failed"
                self._report(address, False)
            else:
                self._report(address, True)
                self._log.info("Remotedialer connected to proxy url=%s", url)
                error = await self._connected(address, ws)
            self._log.error('Remotedialer proxy error; reconnecting... '
                            'error="%s" url="%s"', error, url)
            await asyncio.sleep(self._timings.tunnel_reconnect)

    async def _connected(self, address: str,
                         ws: aiohttp.ClientWebSocketResponse) -> str:
        timings = self._timings
        pinger = asyncio.create_task(_ping(ws, timings.tunnel_ping_interval))
        try:
            error = await _hold(ws, timings.tunnel_dead_after,
                                aiohttp.WSMsgType.PONG)
            self._report(address, False)  # before the close wait
            return error
        finally:
            pinger.cancel()
            await _close(ws, timings.tunnel_ping_interval)

    async def _dial(self, url: str) -> aiohttp.ClientWebSocketResponse | None:
        if self._session is None:
            # No session-wide timeout: the dial's bound is ours (or none).
            self._session = aiohttp.ClientSession(
                trust_env=False, timeout=aiohttp.ClientTimeout(total=None))
        limit = self._timings.tunnel_dial_timeout or None
        try:
            async with asyncio.timeout(limit):
                return await self._session.ws_connect(
                    url, autoping=False, headers={NODE_HEADER: self._node})
        except (aiohttp.ClientError, OSError) as exc:  # timeouts included
            self._log.error('Failed to connect to proxy. Empty dialer '
                            'response error="%s"', exc or "dial timeout")
            return None
