"""How a node learns API server addresses (docs/k3s-behaviour.md,
"Load balancer": C3, C4, R3, R4).

The load balancer's list comes, in order, from its state file, from the
etcd key ``k3s/apiaddresses`` (etcd-only servers), from the supervisor's
``/v1-k3s/apiservers`` and then from a watch of the ``kubernetes``
Endpoints. The watch runs *through the load balancer*: while the LB is
stuck on an etcd-only default (#11311) every list answers "apiserver
disabled" and no event arrives, which is the bug. @RW breaks the loop by
asking ``/v1-k3s/apiservers`` again on every re-list (R4); an etcd-only
server answers that from etcd (R3, ``apiservers_answer``).
"""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import aiohttp

from chaosk3s.lab.k3s.context import NodeContext
from chaosk3s.lab.k3s.loadbalancer import LoadBalancer
from chaosk3s.lab.k3s.tunnel import TunnelClient
from chaosk3s.lab.releases import REWORK

APISERVERS_PATH = "/v1-k3s/apiservers"
ENDPOINTS_PATH = ("/api/v1/namespaces/default/endpoints"
                  "?fieldSelector=metadata.name%3Dkubernetes")
RELIST_BACKOFF_START = 0.8  # client-go reflector: 800 ms, doubling
BACKOFF_RESET_CAPS = 4  # client-go resets after 2 min quiet: 4x its 30 s cap
ANSWER_TIMEOUT = 5.0  # K3s's per-source timeout for /v1-k3s/apiservers
REQUEST_POLLS = 10  # a list or apiservers GET is abandoned after 10 polls
AddressReader = Callable[[], Awaitable[list[str] | None]]


def endpoint_addresses(endpoints: dict) -> list[str]:
    """K3s util.GetAddresses: every subset address with its first port."""
    addresses = []
    for subset in endpoints.get("subsets") or []:
        ports = subset.get("ports") or []
        port = ports[0].get("port") if ports else None
        for address in subset.get("addresses") or []:
            if address.get("ip"):
                addresses.append(f"{address['ip']}:{port or 443}")
    return addresses


async def apiservers_answer(family: str, fetch_endpoints: AddressReader,
                            read_etcd_addresses: AddressReader | None,
                            timeout: float = ANSWER_TIMEOUT
                            ) -> list[str] | None:
    """The body of GET /v1-k3s/apiservers on a server's supervisor.

    buggy/fix1: the Endpoints addresses, None when they cannot be read.
    rework: the union with the etcd key, each source bounded by timeout,
    so an etcd-only server answers even when no apiserver is up (R3).
    """
    endpoints = await _bounded(fetch_endpoints, timeout)
    if family != REWORK:
        return endpoints
    from_etcd = await _bounded(read_etcd_addresses, timeout)
    return sorted(set(endpoints or []) | set(from_etcd or []))


async def _bounded(read: AddressReader | None,
                   timeout: float) -> list[str] | None:
    if read is None:
        return None
    try:
        async with asyncio.timeout(timeout):
            return await read()
    except Exception:  # unreachable, timed out or garbled: no answer
        return None


class _Backoff:
    """client-go's re-list backoff (no jitter, so tests can rely on it)."""

    def __init__(self, cap: float):
        self._cap, self._delay, self._last = cap, RELIST_BACKOFF_START, 0.0

    def next(self) -> float:
        now = time.monotonic()
        if now - self._last > BACKOFF_RESET_CAPS * self._cap:
            self._delay = RELIST_BACKOFF_START
        delay, self._last = min(self._delay, self._cap), now
        self._delay = min(self._delay * 2, self._cap)
        return delay


class AddressSync:
    """Feeds the LB and the tunnels; ``run()`` until cancelled."""

    def __init__(self, ctx: NodeContext, lb: LoadBalancer,
                 tunnels: TunnelClient,
                 read_etcd_addresses: AddressReader | None,
                 api_base: str | None = None):
        self._ctx, self._lb, self._tunnels = ctx, lb, tunnels
        self._read_etcd = read_etcd_addresses
        self._base = api_base or ctx.api_base
        self._timings, self._log = ctx.timings, ctx.log
        self._session: aiohttp.ClientSession | None = None
        self._debounce: asyncio.Task | None = None
        self._poll: asyncio.Task | None = None
        # Set once the first supervisor list is in the LB: K3s starts the
        # kubelet only after its tunnel setup got that list.
        self.ready = asyncio.Event()

    async def run(self) -> None:
        async with aiohttp.ClientSession(trust_env=False) as session:
            self._session = session
            try:
                if self._ctx.node.role == "etcd" and self._read_etcd:
                    self._adopt(await self._wait_for_etcd())
                self._adopt(await self._wait_for_supervisor())
                self._tunnels.sync(self._lb.addresses)
                self.ready.set()
                await self._list_and_watch()
            finally:
                for task in (self._debounce, self._poll):
                    if task is not None:
                        task.cancel()

    # -- startup ----------------------------------------------------------

    async def _wait_for_etcd(self) -> list[str]:
        while True:
            try:
                addresses = await self._read_etcd()
            except Exception as exc:  # etcd not up yet: keep waiting
                self._log.debug("Reading apiserver addresses from etcd: %s",
                                exc)
                addresses = None
            if addresses:
                return list(addresses)
            self._log.info("Waiting for control-plane node to register "
                           "apiserver addresses in etcd")
            await asyncio.sleep(self._timings.apiservers_poll)

    async def _wait_for_supervisor(self) -> list[str]:
        self._log.info("Getting list of apiserver endpoints from server")
        while True:
            addresses = await self._get_apiservers()
            if addresses:
                self._log.info("Got apiserver addresses from supervisor: "
                               "[%s]", " ".join(addresses))
                return addresses
            await asyncio.sleep(self._timings.apiservers_poll)

    def _adopt(self, addresses: list[str]) -> None:
        """The first etcd-only node leaves its local default (C3)."""
        if self._ctx.node.role == "etcd" and self._ctx.node.server is None:
            if self._lb.default != addresses[0]:
                self._lb.set_default(addresses[0])
        self._lb.update(addresses)

    async def _get_json(self, path: str) -> object:
        """GET path through the LB; a non-200 answer raises with the
        Status message (e.g. "apiserver disabled")."""
        async with self._session.get(
                self._base + path, timeout=self._request_timeout()) as resp:
            body = await resp.text()
            if resp.status != 200:
                raise aiohttp.ClientError(_message(body, resp.status))
            return json.loads(body)

    async def _get_apiservers(self) -> list[str] | None:
        try:
            answer = await self._get_json(APISERVERS_PATH)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            self._log.info("Failed to retrieve list of apiservers from "
                           "server: %s", _why(exc))
            return None
        if not isinstance(answer, list):
            return None
        return [str(a) for a in answer if a]

    # -- the Endpoints watch ------------------------------------------------

    async def _list_and_watch(self) -> None:
        backoff = _Backoff(self._timings.relist_backoff_max)
        while True:
            version = await self._list()
            if version is not None:
                await self._watch(version)
            await asyncio.sleep(backoff.next())

    async def _list(self) -> str | None:
        if self._ctx.release.family == REWORK:
            self._start_apiservers_poll()
        try:
            doc = await self._get_json(ENDPOINTS_PATH)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            self._log.warning("failed to list *v1.Endpoints: %s",
                              _why(exc))
            return None
        for item in doc.get("items") or []:
            self._event(endpoint_addresses(item))
        return str((doc.get("metadata") or {}).get("resourceVersion", ""))

    async def _watch(self, version: str) -> None:
        """Until the watch breaks; every end leads to a re-list."""
        url = f"{self._base}{ENDPOINTS_PATH}&watch=1&resourceVersion={version}"
        try:
            async with self._session.get(
                    url, timeout=aiohttp.ClientTimeout(total=None)) as resp:
                if resp.status != 200:
                    raise aiohttp.ClientError(
                        _message(await resp.text(), resp.status))
                async for line in resp.content:
                    if line.strip() and not self._on_watch_event(line):
                        return
            reason = "watch closed"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            reason = _why(exc)
        self._log.info("watch of *v1.Endpoints ended with: %s", reason)

    def _on_watch_event(self, line: bytes) -> bool:
        event = json.loads(line)
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            self._log.warning("watch of *v1.Endpoints ended with: %s",
                              obj.get("message", obj))
            return False
        if kind in ("ADDED", "MODIFIED"):
            self._event(endpoint_addresses(obj))
        return True

    def _start_apiservers_poll(self) -> None:
        """@RW: each (re-)list also asks the supervisor, asynchronously."""
        if self._poll is None or self._poll.done():
            self._poll = asyncio.create_task(self._poll_apiservers())

    async def _poll_apiservers(self) -> None:
        addresses = await self._get_apiservers()
        if addresses:
            self._event(addresses)

    # -- debounce -----------------------------------------------------------

    def _event(self, addresses: list[str]) -> None:
        """A newer event restarts the debounce; empty lists are ignored."""
        if not addresses:
            return
        if self._debounce is not None:
            self._debounce.cancel()
        self._debounce = asyncio.create_task(self._apply_later(addresses))

    async def _apply_later(self, addresses: list[str]) -> None:
        await asyncio.sleep(self._timings.endpoint_debounce)
        if set(addresses) == set(self._lb.addresses):
            return
        self._lb.update(addresses)
        self._tunnels.sync(self._lb.addresses)

    def _request_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=REQUEST_POLLS * self._timings.apiservers_poll)


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _message(body: str, status: int) -> str:
    """A Kubernetes Status message ("apiserver disabled"), else the body."""
    try:
        return str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        return body.strip() or f"HTTP {status}"
