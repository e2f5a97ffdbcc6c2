"""The etcd load balancer of control-plane-only servers, over loopback.

Two stand-in etcd members answer on their client port with their name
and on their supervisor port with /ping; the proxy must send connections
only to members whose /ping answers, as K3s's etcd proxy does.
"""

import asyncio
import json
import socket
from contextlib import AsyncExitStack

import aiohttp
from aiohttp import web

from chaosk3s.lab.etcd import CLIENT_PORT
from chaosk3s.lab.k3s.context import SUPERVISOR_PORT, NodeContext
from chaosk3s.lab.k3s.etcdproxy import EtcdProxy, default_member, members
from chaosk3s.lab.spec import parse_spec
from chaosk3s.lab.state import LabState
from tests.unit.asynctools import make_log, run, until

MEMBERS = {"server-etcd-0": "127.0.0.31", "server-etcd-1": "127.0.0.32"}
FAST = {"etcd_lb_health_interval": 0.2, "etcd_lb_health_timeout": 0.5,
        "lb_health_interval": 0.2}


def context(tmp_path, version: str) -> NodeContext:
    first, second = MEMBERS.items()
    spec = parse_spec({
        "subnet": "127.0.0.0/24", "k3s_version": version, "timings": FAST,
        "nodes": [{"name": first[0], "role": "etcd", "address": first[1]},
                  {"name": second[0], "role": "etcd", "address": second[1],
                   "server": first[0]},
                  {"name": "server-cp-0", "role": "control-plane",
                   "address": "127.0.0.33", "server": first[0]}]})
    log, _rec = make_log("etcdproxy")
    return NodeContext(spec, spec.node("server-cp-0"),
                       LabState(tmp_path / "state"), log)


class Member:
    """A member's client port (says its name) and supervisor /ping."""

    def __init__(self, name: str, host: str):
        self.name, self.host, self.healthy = name, host, True
        self.runners: list[web.AppRunner] = []

    async def start(self) -> None:
        client = web.Application()
        client.router.add_get("/name", self._name)
        supervisor = web.Application()
        supervisor.router.add_get("/ping", self._ping)
        for app, port in ((client, CLIENT_PORT),
                          (supervisor, SUPERVISOR_PORT)):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, self.host, port,
                              reuse_address=True).start()
            self.runners.append(runner)

    async def _name(self, _request: web.Request) -> web.Response:
        return web.Response(text=self.name)

    async def _ping(self, _request: web.Request) -> web.Response:
        if not self.healthy:
            return web.Response(status=503, text="not ready")
        return web.Response(text="pong")

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def names(port: int, count: int = 6) -> list[str]:
    """Who answers, one new connection per request."""
    seen = []
    for _ in range(count):
        async with aiohttp.ClientSession(trust_env=False) as session:
            async with session.get(f"http://127.0.0.1:{port}/name") as r:
                seen.append(await r.text())
    return seen


def test_members_default_and_state_file(tmp_path):
    ctx = context(tmp_path, "v1.28.15+k3s1")
    assert members(ctx) == ["127.0.0.31:2379", "127.0.0.32:2379"]
    assert default_member(ctx) == "127.0.0.31:2379"  # the join server's


def test_connections_avoid_a_member_whose_ping_fails(tmp_path):
    async def scenario():
        async with AsyncExitStack() as stack:
            servers = {name: Member(name, host)
                       for name, host in MEMBERS.items()}
            for member in servers.values():
                await member.start()
                stack.push_async_callback(member.stop)
            servers["server-etcd-0"].healthy = False
            port = free_port()
            ctx = context(tmp_path, "v1.28.15+k3s-2d0661e3")
            proxy = EtcdProxy(ctx, listen=("127.0.0.1", port))
            await proxy.start()
            stack.push_async_callback(proxy.close)
            state = json.loads(proxy.lb._file.read_text())
            assert state["ServerAddresses"] == members(ctx)
            await until(lambda: not proxy.lb.snapshot()["servers"]
                        ["127.0.0.31:2379"]["healthy"], 3)
            assert set(await names(port)) == {"server-etcd-1"}
            servers["server-etcd-0"].healthy = True
            servers["server-etcd-1"].healthy = False
            await until(lambda: not proxy.lb.snapshot()["servers"]
                        ["127.0.0.32:2379"]["healthy"], 3)
            await asyncio.sleep(0.3)
            assert set(await names(port)) == {"server-etcd-0"}
    run(scenario)
