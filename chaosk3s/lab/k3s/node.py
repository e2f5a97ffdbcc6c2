"""Assembles one emulated K3s node and runs it until SIGTERM.

Which parts run follows the node's role, as in K3s: every server has the
supervisor on 6443; control-plane nodes the API server (control-plane-only
ones reach etcd through their etcd proxy on 127.0.0.1:2379); agents and
etcd-only servers the agent load balancer with its tunnels; every node a
kubelet.
"""

import asyncio
import contextlib
import json
import signal

import aiohttp
from aiohttp import web

from chaosk3s.lab.k3s import addresses, tunnel
from chaosk3s.lab.k3s.apiserver.server import APIServer
from chaosk3s.lab.k3s.context import SUPERVISOR_PORT, NodeContext
from chaosk3s.lab.k3s.controllers import APIADDRESSES_KEY
from chaosk3s.lab.k3s.etcdclient import EtcdClient, EtcdError
from chaosk3s.lab.k3s.etcdproxy import ENDPOINT, EtcdProxy
from chaosk3s.lab.k3s.kubelet import Kubelet
from chaosk3s.lab.k3s.loadbalancer import LoadBalancer
from chaosk3s.lab.k3s.supervisor import Supervisor, lab_ca_pem

SHUTDOWN_SECONDS = 1.0  # open requests get this long when k3s stops


async def run(ctx: NodeContext) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if await _starting_up(ctx, stop):
        return 0
    if ctx.node.role == "control-plane" and not await bootstrap(ctx):
        return 1
    ctx.log.info("Starting k3s %s %s (%s, %s timings)", ctx.release.version,
                 ctx.node.role, ctx.release.family, ctx.timings.profile)
    async with contextlib.AsyncExitStack() as stack:
        node = EmulatedNode(ctx, stack)
        await node.start()
        await stop.wait()
        ctx.log.info("Shutting down k3s")
    return 0


async def _starting_up(ctx: NodeContext, stop: asyncio.Event) -> bool:
    """A restarted K3s takes seconds before it listens again; that window
    is what sends load balancers to their default server (#11311). The
    lab's first boot skips it so `lab up` stays fast. True if stopped
    while starting."""
    marker = ctx.root / "var/lib/rancher/k3s/.chaosk3s-booted"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        return False
    ctx.log.info("Starting k3s: listening in %gs", ctx.timings.startup)
    try:
        await asyncio.wait_for(stop.wait(), ctx.timings.startup)
        return True
    except TimeoutError:
        return False


class EmulatedNode:
    def __init__(self, ctx: NodeContext, stack: contextlib.AsyncExitStack):
        self.ctx = ctx
        self.stack = stack
        # Control-plane-only servers reach etcd through their etcd proxy.
        self.etcd_proxy = EtcdProxy(ctx) if ctx.node.role == "control-plane" \
            else None
        endpoints = [ENDPOINT] if self.etcd_proxy else ctx.etcd_endpoints
        self.etcd = EtcdClient(endpoints) if ctx.node.is_server else None
        self.lb: LoadBalancer | None = None
        self.addresses_ready: asyncio.Event | None = None

    async def start(self) -> None:
        ctx = self.ctx
        if self.etcd_proxy:
            await self.etcd_proxy.start()
            self.stack.push_async_callback(self.etcd_proxy.close)
        if self.etcd:
            self.stack.push_async_callback(self.etcd.close)
        if ctx.runs_lb:
            await self._start_agent_side()
        apiserver = None
        if ctx.node.runs_apiserver:
            apiserver = APIServer(ctx, self.etcd)
            await apiserver.start()
        if ctx.node.is_server:
            await self._serve(apiserver)
        if apiserver:
            # Closed before the HTTP server (callbacks run last-in first-
            # out): it ends the watches that would otherwise hold the
            # server's shutdown open.
            self.stack.push_async_callback(apiserver.close)
        self._spawn(self._run_kubelet())

    async def _start_agent_side(self) -> None:
        ctx = self.ctx
        if ctx.node.server is None:
            # K3s deletes the first etcd-only server's LB state on every
            # start: its default is local until etcd names an apiserver.
            ctx.lb_state_file.unlink(missing_ok=True)
        self.lb = LoadBalancer(ctx.lb_default, ctx.release.family,
                               ctx.timings, ctx.lb_state_file, ctx.log)
        await self.lb.start()
        self.stack.push_async_callback(self.lb.close)
        tunnels = tunnel.TunnelClient(ctx.node.name, self.lb.set_health,
                                      ctx.timings, ctx.log)
        self.stack.push_async_callback(tunnels.close)
        reader = self.read_etcd_addresses if ctx.node.role == "etcd" \
            else None
        sync = addresses.AddressSync(ctx, self.lb, tunnels, reader)
        self._spawn(sync.run())
        self.addresses_ready = sync.ready

    async def _serve(self, apiserver: APIServer | None) -> None:
        supervisor = Supervisor(
            self.ctx, connect=tunnel.connect_handler,
            apiservers=self.apiservers, db_info=self.db_info,
            apiserver=apiserver)
        runner = web.AppRunner(supervisor.app(), access_log=None,
                               handle_signals=False,
                               shutdown_timeout=SHUTDOWN_SECONDS)
        await runner.setup()
        self.stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "0.0.0.0", SUPERVISOR_PORT).start()

    async def _run_kubelet(self) -> None:
        if self.addresses_ready is not None:
            await self.addresses_ready.wait()
        await Kubelet(self.ctx).run()

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self.stack.push_async_callback(_cancel, task)

    # -- data sources for the supervisor and address sync -----------------
    async def read_etcd_addresses(self) -> list[str] | None:
        try:
            kv = await self.etcd.get(APIADDRESSES_KEY)
        except EtcdError as exc:
            self.ctx.log.info("Failed to read %s from etcd: %s",
                              APIADDRESSES_KEY, exc)
            return None
        return json.loads(kv.value) if kv else None

    async def apiservers(self) -> list[str] | None:
        reader = self.read_etcd_addresses if self.etcd else None
        return await addresses.apiservers_answer(
            self.ctx.release.family, self.fetch_endpoints, reader)

    async def fetch_endpoints(self) -> list[str] | None:
        """The `kubernetes` Endpoints, read the way this node reads the
        API (through its own load balancer on etcd-only servers)."""
        url = (f"{self.ctx.api_base}/api/v1/namespaces/default/endpoints/"
               f"kubernetes")
        timeout = aiohttp.ClientTimeout(total=addresses.ANSWER_TIMEOUT)
        try:
            async with aiohttp.ClientSession(trust_env=False,
                                             timeout=timeout) as session:
                async with session.get(url) as reply:
                    if reply.status != 200:
                        return None
                    return addresses.endpoint_addresses(await reply.json())
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def db_info(self) -> dict:
        try:
            return await self.etcd.call("/v3/cluster/member/list", {})
        except EtcdError as exc:
            return {"error": str(exc)}


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def bootstrap(ctx: NodeContext) -> bool:
    """A control-plane-only server fetches /cacerts from its join server.

    Before the #11333 fix an unreachable join server is fatal; after it,
    a node that bootstrapped once uses the CA it keeps on disk.
    """
    ca_file = ctx.root / "var/lib/rancher/k3s/server/tls/server-ca.crt"
    url = f"http://{ctx.join_address}/cacerts"
    try:
        timeout = aiohttp.ClientTimeout(total=ctx.timings.lb_dial_timeout)
        async with aiohttp.ClientSession(trust_env=False,
                                         timeout=timeout) as session:
            async with session.get(url) as reply:
                reply.raise_for_status()
                ca = await reply.text()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        if ctx.release.bootstrap_fix and ca_file.exists():
            ctx.log.info("Join server %s unreachable (%s); using the server "
                         "CA on disk", ctx.join_address, exc)
            return True
        ctx.log.error('starting kubernetes: preparing server: failed to get '
                      'CA certs: Get "https://%s/cacerts": %s',
                      ctx.join_address, _dial_error(exc, ctx.join_address))
        return False
    ca_file.parent.mkdir(parents=True, exist_ok=True)
    ca_file.write_text(ca if ca.strip() else lab_ca_pem(ctx))
    return True


def _dial_error(exc: BaseException, address: str) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"dial tcp {address}: connect: connection refused"
    if isinstance(exc, TimeoutError):
        return f"dial tcp {address}: i/o timeout"
    return str(exc)
