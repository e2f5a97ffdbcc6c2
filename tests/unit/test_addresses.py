"""How a node learns API server addresses, against a tiny fake remote API.

The fake answers /v1-k3s/apiservers and a list/watch of the kubernetes
Endpoints over real HTTP; the load balancer and the tunnels fed by
AddressSync are the real ones (tunnels reach real /v1-k3s/connect
endpoints on loopback).
"""

import asyncio
import json
import socket
import time
import warnings
from contextlib import AsyncExitStack

import pytest
from aiohttp import web

from chaosk3s.lab.k3s.addresses import (
    AddressSync,
    apiservers_answer,
    endpoint_addresses,
)
from chaosk3s.lab.k3s.context import NodeContext
from chaosk3s.lab.k3s.loadbalancer import LoadBalancer
from chaosk3s.lab.k3s.tunnel import (
    CONNECT_PATH,
    TIMINGS_KEY,
    TunnelClient,
    connect_handler,
)
from chaosk3s.lab.releases import BUGGY, FIX1, REWORK
from chaosk3s.lab.spec import DEFAULT_NODES, parse_spec
from chaosk3s.lab.state import LabState
from tests.unit.asynctools import Recorder, make_log, run, until

VERSIONS = {BUGGY: "v1.28.14+k3s1", FIX1: "v1.28.15+k3s-2d0661e3",
            REWORK: "v1.31.4+k3s1"}
TIMINGS = {"endpoint_debounce": 1.0, "apiservers_poll": 0.2,
           "relist_backoff_max": 8.0, "tunnel_ping_interval": 0.5,
           "tunnel_reconnect": 0.3}

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web.NotAppKeyWarning")




def context(tmp_path, family: str, node: str) -> tuple[NodeContext, Recorder]:
    spec = parse_spec({"nodes": DEFAULT_NODES, "timings": TIMINGS,
                       "k3s_version": VERSIONS[family]})
    log, rec = make_log(f"addr.{node}")
    return NodeContext(spec=spec, node=spec.node(node),
                       state=LabState(tmp_path), log=log), rec


def endpoints_object(addresses: list[str], version: int) -> dict:
    return {"kind": "Endpoints", "apiVersion": "v1",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "resourceVersion": str(version)},
            "subsets": [{"addresses": [{"ip": a.rsplit(":", 1)[0]}],
                         "ports": [{"name": "https", "protocol": "TCP",
                                    "port": int(a.rsplit(":", 1)[1])}]}
                        for a in addresses]}


def disabled() -> web.Response:
    return web.json_response(
        {"kind": "Status", "apiVersion": "v1", "status": "Failure",
         "message": "apiserver disabled", "reason": "ServiceUnavailable",
         "code": 503}, status=503)


class FakeAPI:
    """The remote side: supervisor /v1-k3s/apiservers plus Endpoints."""

    def __init__(self):
        self.apiservers: list[str] = []
        self.endpoints: list[str] = []
        self.api_disabled = False
        self.version = 1
        self.lists: list[float] = []
        self.apiserver_gets: list[float] = []
        # Checked at stop: an assert in a handler would only be a 500.
        self.selectors: list[str | None] = []
        self._watchers: set[asyncio.Queue] = set()
        self._runner: web.AppRunner | None = None
        self.base = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1-k3s/apiservers", self._apiservers)
        app.router.add_get("/api/v1/namespaces/default/endpoints",
                           self._endpoints)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.2", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base = f"http://127.0.0.2:{port}"

    async def stop(self) -> None:
        self.break_watches()
        await self._runner.cleanup()
        assert set(self.selectors) <= {"metadata.name=kubernetes"}, \
            self.selectors

    def publish(self, addresses: list[str]) -> None:
        self.endpoints, self.version = addresses, self.version + 1
        event = {"type": "MODIFIED",
                 "object": endpoints_object(addresses, self.version)}
        for queue in self._watchers:
            queue.put_nowait(event)

    def break_watches(self) -> None:
        for queue in self._watchers:
            queue.put_nowait(None)

    async def _apiservers(self, _request: web.Request) -> web.Response:
        self.apiserver_gets.append(time.monotonic())
        return web.json_response(self.apiservers)

    async def _endpoints(self, request: web.Request) -> web.StreamResponse:
        self.selectors.append(request.query.get("fieldSelector"))
        if request.query.get("watch"):
            return await self._watch(request)
        self.lists.append(time.monotonic())
        if self.api_disabled:
            return disabled()
        return web.json_response(
            {"kind": "EndpointsList", "apiVersion": "v1",
             "metadata": {"resourceVersion": str(self.version)},
             "items": [endpoints_object(self.endpoints, self.version)]})

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        if self.api_disabled:
            return disabled()
        response = web.StreamResponse()
        await response.prepare(request)
        queue: asyncio.Queue = asyncio.Queue()
        self._watchers.add(queue)
        try:
            while (event := await queue.get()) is not None:
                await response.write(json.dumps(event).encode() + b"\n")
        finally:
            self._watchers.discard(queue)
        await response.write_eof()
        return response


async def tunnel_server(stack: AsyncExitStack, host: str, timings) -> str:
    """A real /v1-k3s/connect endpoint; returns its ip:port."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = web.Application()
        app[TIMINGS_KEY] = timings
    app.router.add_get(CONNECT_PATH, connect_handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    sock = socket.socket()
    sock.bind((host, 0))
    await web.SockSite(runner, sock).start()
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


class Node:
    """One node's LB, tunnels and AddressSync, cleaned up by the stack."""

    def __init__(self, ctx: NodeContext, api: FakeAPI, read_etcd=None):
        self.lb = LoadBalancer(ctx.lb_default, ctx.release.family,
                               ctx.timings, ctx.lb_state_file, ctx.log,
                               listen=("127.0.0.1", 0))
        self.tunnels = TunnelClient(ctx.node.name, self.lb.set_health,
                                    ctx.timings, ctx.log)
        self.sync = AddressSync(ctx, self.lb, self.tunnels, read_etcd,
                                api_base=api.base)
        self.task: asyncio.Task | None = None

    async def start(self, stack: AsyncExitStack) -> "Node":
        self.task = asyncio.create_task(self.sync.run())
        stack.push_async_callback(self.stop)
        return self

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.tunnels.close()
        await self.lb.close()



async def setup(stack, tmp_path, family, node="agent-0", read_etcd=None):
    ctx, rec = context(tmp_path, family, node)
    api = FakeAPI()
    await api.start()
    stack.push_async_callback(api.stop)
    c1 = await tunnel_server(stack, "127.0.0.3", ctx.timings)
    c2 = await tunnel_server(stack, "127.0.0.4", ctx.timings)
    return ctx, rec, api, c1, c2, Node(ctx, api, read_etcd)


def test_endpoint_addresses_take_the_first_port_of_each_subset():
    obj = endpoints_object(["127.0.0.3:6443", "127.0.0.4:7443"], 1)
    assert endpoint_addresses(obj) == ["127.0.0.3:6443", "127.0.0.4:7443"]
    assert endpoint_addresses({"subsets": [
        {"addresses": [{"ip": "127.0.0.5"}]}]}) == ["127.0.0.5:443"]
    assert endpoint_addresses({}) == []


def test_startup_poll_then_debounced_watch(tmp_path):
    async def scenario():
        async with AsyncExitStack() as stack:
            ctx, rec, api, c1, c2, node = await setup(stack, tmp_path, FIX1)
            api.endpoints = [c1]
            await node.start(stack)
            await until(lambda: len(api.apiserver_gets) >= 3, 5)
            assert node.lb.addresses == [ctx.lb_default]  # [] not used
            api.apiservers = [c1]
            await until(lambda: node.lb.addresses == [c1], 3)
            assert node.tunnels.addresses == [c1]
            await until(lambda: node.lb.snapshot()["servers"][c1][
                "healthy"] is True and api._watchers, 5)
            updates = len(rec.matching("Updated load balancer"))
            api.publish([c1, c2])
            await asyncio.sleep(0.5 * ctx.timings.endpoint_debounce)
            api.publish([c2])  # restarts the debounce timer
            last = time.monotonic()
            api.publish([])  # ignored, does not cancel the pending [c2]
            waited = await until(lambda: node.lb.addresses == [c2], 4)
            assert time.monotonic() - last >= (
                0.9 * ctx.timings.endpoint_debounce)
            assert waited < ctx.timings.endpoint_debounce + 1.5
            applied = rec.matching("Updated load balancer")[updates:]
            assert applied == [
                "Updated load balancer k3s-agent-load-balancer server "
                f"addresses -> [{c2}] [default: {ctx.lb_default}]"]
            await until(lambda: node.tunnels.addresses == [c2], 2)
            assert rec.matching(f"Stopped tunnel to {c1}")
            state = json.loads(ctx.lb_state_file.read_text())
            assert state["ServerAddresses"] == [c2]
    run(scenario)


@pytest.mark.parametrize("family", [FIX1, REWORK])
def test_relist_backoff_and_rework_apiservers_poll(tmp_path, family):
    async def scenario():
        async with AsyncExitStack() as stack:
            ctx, rec, api, c1, c2, node = await setup(stack, tmp_path,
                                                      family)
            api.apiservers = api.endpoints = [c1]
            await node.start(stack)
            await until(lambda: api._watchers, 5)
            gets = len(api.apiserver_gets)
            # C1 gone, the LB stuck on a default that has no apiserver
            api.api_disabled = True
            api.apiservers = [c1, c2]  # the etcd key knows C2 (R3)
            api.break_watches()
            broken = time.monotonic()
            await until(lambda: len(api.lists) >= 4, 12)
            relists = [broken, *api.lists[1:4]]
            gaps = [b - a for a, b in zip(relists, relists[1:], strict=False)]
            # client-go: 0.8 s, doubling (1.6, 3.2), capped later
            assert 0.7 < gaps[0] < 1.3, gaps
            assert 1.5 < gaps[1] < 2.2 and 3.1 < gaps[2] < 4.0, gaps
            if family == REWORK:  # R4: every re-list asks the supervisor
                # the ask is a task started with the list, so the third
                # one may land just after the third list: wait, briefly
                await until(lambda: len(api.apiserver_gets) - gets >= 3, 2)
                await until(lambda: node.lb.addresses == [c1, c2], 3)
                await until(lambda: node.tunnels.addresses == [c1, c2], 2)
            else:
                assert len(api.apiserver_gets) == gets
                assert node.lb.addresses == [c1]
            assert rec.matching("apiserver disabled")
    run(scenario)


def test_first_etcd_node_reads_etcd_and_moves_its_default(tmp_path):
    async def scenario():
        async with AsyncExitStack() as stack:
            reads = []
            answers = [None, [], None]

            async def read_etcd() -> list[str] | None:
                reads.append(time.monotonic())
                return answers.pop(0) if answers else [c1]
            ctx, rec, api, c1, c2, node = await setup(
                stack, tmp_path, BUGGY, "server-etcd-0", read_etcd)
            assert node.lb.default == "127.0.0.1:6443"  # C3: local at first
            api.apiservers = api.endpoints = [c1]
            await node.start(stack)
            await until(lambda: node.lb.addresses == [c1], 5)
            assert len(reads) == 4
            assert node.lb.default == c1
            assert len(rec.matching("Waiting for control-plane node to "
                                    "register apiserver addresses in "
                                    "etcd")) == 3
            await until(lambda: node.tunnels.addresses == [c1], 5)
    run(scenario)


def test_secondary_etcd_node_keeps_its_join_server_default(tmp_path):
    async def scenario():
        async with AsyncExitStack() as stack:
            async def read_etcd() -> list[str]:
                return [c1]
            ctx, _rec, api, c1, _c2, node = await setup(
                stack, tmp_path, BUGGY, "server-etcd-1", read_etcd)
            api.apiservers = api.endpoints = [c1]
            await node.start(stack)
            await until(lambda: node.tunnels.addresses == [c1], 5)
            assert node.lb.default == ctx.join_address
            assert node.lb.addresses == [c1]
    run(scenario)


def test_apiservers_answer_per_family():
    async def scenario():
        async def endpoints() -> list[str]:
            return ["10.0.0.3:6443"]

        async def broken() -> list[str]:
            raise ConnectionError("apiserver disabled")

        async def etcd() -> list[str]:
            return ["10.0.0.4:6443", "10.0.0.3:6443"]

        async def slow() -> list[str]:
            await asyncio.sleep(10)
            return ["10.0.0.9:6443"]
        for family in (BUGGY, FIX1):
            assert await apiservers_answer(family, endpoints, etcd) == [
                "10.0.0.3:6443"]
            assert await apiservers_answer(family, broken, etcd) is None
        assert await apiservers_answer(REWORK, endpoints, etcd) == [
            "10.0.0.3:6443", "10.0.0.4:6443"]
        assert await apiservers_answer(REWORK, broken, etcd) == [
            "10.0.0.3:6443", "10.0.0.4:6443"]
        start = time.monotonic()
        assert await apiservers_answer(REWORK, endpoints, slow,
                                       timeout=0.3) == ["10.0.0.3:6443"]
        assert time.monotonic() - start < 2
        assert await apiservers_answer(REWORK, broken, None) == []
    run(scenario)
