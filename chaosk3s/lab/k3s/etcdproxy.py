"""The etcd load balancer of control-plane-only servers (K3s etcdproxy).

A server started with ``--disable-etcd`` reaches etcd through a client
load balancer, ``k3s-etcd-server-load-balancer`` on 127.0.0.1:2379: the
same load-balancer code (and release family) as the agent's, over the
etcd members' client addresses, with the join server's as default. Its
health check is not a tunnel but ``GET /ping`` on each member's
supervisor port, every ``etcd_lb_health_interval`` plus up to 100 %
jitter, bounded by ``etcd_lb_health_timeout``
(docs/k3s-behaviour.md, "etcd load balancer").
"""

import asyncio
import random

import aiohttp

from chaosk3s.lab.etcd import CLIENT_PORT
from chaosk3s.lab.k3s.context import SUPERVISOR_PORT, NodeContext
from chaosk3s.lab.k3s.loadbalancer import LoadBalancer

SERVICE = "k3s-etcd-server-load-balancer"
LISTEN = ("127.0.0.1", CLIENT_PORT)
ENDPOINT = f"http://127.0.0.1:{CLIENT_PORT}"  # what the API server uses


def members(ctx: NodeContext) -> list[str]:
    """host:port of every etcd member's client URL (K3s syncs this list
    from etcd's member list; the lab's members are fixed by its spec)."""
    return [f"{n.address}:{CLIENT_PORT}" for n in ctx.spec.nodes
            if n.runs_etcd]


def default_member(ctx: NodeContext) -> str:
    """The join server's client URL (K3s asks its /db/info, and falls
    back to join-host:2379)."""
    join = ctx.spec.node(ctx.node.server)
    return f"{join.address}:{CLIENT_PORT}" if join.runs_etcd \
        else members(ctx)[0]


class EtcdProxy:
    def __init__(self, ctx: NodeContext,
                 listen: tuple[str, int] = LISTEN):
        self.ctx = ctx
        state = (ctx.root / "var/lib/rancher/k3s/server/etc"
                 / f"{SERVICE}.json")
        self.lb = LoadBalancer(default_member(ctx), ctx.release.family,
                               ctx.timings, state, ctx.log, listen=listen,
                               name=SERVICE)
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        await self.lb.start()
        self.lb.update(members(self.ctx))
        for address in members(self.ctx):
            self.lb.set_health(address, None)
            self._tasks.append(asyncio.create_task(self._check(address)))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.lb.close()

    async def _check(self, address: str) -> None:
        timings = self.ctx.timings
        url = f"http://{address.rsplit(':', 1)[0]}:{SUPERVISOR_PORT}/ping"
        limit = aiohttp.ClientTimeout(total=timings.etcd_lb_health_timeout)
        async with aiohttp.ClientSession(trust_env=False,
                                         timeout=limit) as session:
            while True:
                self.lb.set_health(address, await _ping(session, url))
                jitter = 1 + random.random()  # wait.JitterUntil, factor 1
                await asyncio.sleep(timings.etcd_lb_health_interval * jitter)


async def _ping(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url) as reply:
            return reply.status == 200 and (await reply.text()) == "pong"
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False
