"""The /v1-k3s/connect websocket tunnel: its state is the LB health check.

K3s keeps one remotedialer websocket from every LB user to every listed
server (../shared/k3s-behaviour.md 1.4, C5); the load balancer reads "is the
tunnel connected" as that server's health. The lab's tunnel carries no
traffic, only heartbeats, so what matters is how fast a loss is noticed:
both ends ping every ``tunnel_heartbeat`` and give up after
``DEADLINE_BEATS`` heartbeats of silence, so a black hole (no FIN, no RST)
is detected as quickly as a refused or closed connection.

The tunnel is family-agnostic: it reports None when it starts, True on
connect and False on loss, and the load balancer decides what None means.
"""

import asyncio
import logging
from collections.abc import Callable

import aiohttp
from aiohttp import web

from chaosk3s.lab.spec import Timings

CONNECT_PATH = "/v1-k3s/connect"
NODE_HEADER = "X-Chaosk3s-Node"
TIMINGS_KEY = "chaosk3s.timings"  # app key the supervisor sets
LOG_KEY = "chaosk3s.log"  # optional app key: the node's logger
DEADLINE_BEATS = 2  # this many heartbeats of silence means the peer is gone
DIAL_BEATS = 4  # a websocket dial (TCP + upgrade) may take this many beats
_END = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
        aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
_log = logging.getLogger(__name__)
HealthCallback = Callable[[str, bool | None], None]


async def connect_handler(request: web.Request) -> web.WebSocketResponse:
    """Server side, on every server node (etcd-only ones included)."""
    timings: Timings = request.app.get(TIMINGS_KEY) or Timings()
    log: logging.Logger = request.app.get(LOG_KEY) or _log
    peer = request.headers.get(NODE_HEADER) or str(request.remote)
    beat = timings.tunnel_heartbeat
    ws = web.WebSocketResponse(heartbeat=beat, timeout=beat)
    await ws.prepare(request)
    log.info("Handling backend connection request [%s]", peer)
    try:
        await _hold(ws, beat)
    finally:
        await ws.close()
        log.info("Tunnel from %s closed", peer)
    return ws


async def _hold(ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                beat: float) -> str:
    """Wait until the websocket ends; return why, for the log."""
    while True:
        try:
            msg = await ws.receive(timeout=DEADLINE_BEATS * beat)
        except TimeoutError:
            return f"no heartbeat for {DEADLINE_BEATS * beat:g}s"
        if msg.type in _END:
            return f"websocket {msg.type.name.lower()}" + (
                f": {ws.exception()}" if ws.exception() else "")


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
                try:
                    error = await _hold(ws, self._timings.tunnel_heartbeat)
                    self._report(address, False)  # before the close wait
                finally:
                    await self._drop(ws)
            self._log.error('Remotedialer proxy error; reconnecting... '
                            'error="%s" url="%s"', error, url)
            await asyncio.sleep(self._timings.tunnel_reconnect)

    async def _dial(self, url: str) -> aiohttp.ClientWebSocketResponse | None:
        beat = self._timings.tunnel_heartbeat
        if self._session is None:
            self._session = aiohttp.ClientSession(trust_env=False)
        try:
            async with asyncio.timeout(DIAL_BEATS * beat):
                return await self._session.ws_connect(
                    url, heartbeat=beat, headers={NODE_HEADER: self._node},
                    timeout=aiohttp.ClientWSTimeout(ws_close=beat))
        except (aiohttp.ClientError, OSError) as exc:  # timeouts included
            self._log.error('Failed to connect to proxy. Empty dialer '
                            'response error="%s"', exc or "dial timeout")
            return None

    @staticmethod
    async def _drop(ws: aiohttp.ClientWebSocketResponse) -> None:
        """Close; the close handshake waits one heartbeat at most."""
        try:
            await ws.close()
        except (aiohttp.ClientError, OSError):
            pass
