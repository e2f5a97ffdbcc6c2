"""The K3s supervisor on port 6443 of every server node.

It answers K3s's own paths (``/ping``, ``/cacerts``, ``/v1-k3s/...``) and
hands every other path to the Kubernetes API server where one runs. On an
etcd-only server those paths get 503 "apiserver disabled"; from the #11311
fix on, that answer also closes the connection (docs/k3s-behaviour.md,
"Load balancer": C2, F4).
"""

import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from chaosk3s.lab.k3s.context import NodeContext
from chaosk3s.lab.k3s.objects import status_body
from chaosk3s.lab.k3s.tunnel import LOG_KEY, TIMINGS_KEY
from chaosk3s.lab.releases import BUGGY

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def lab_ca_pem(ctx: NodeContext) -> str:
    """The lab's stand-in CA bundle: the lab speaks plain HTTP, but
    bootstrapping still fetches /cacerts, so its reachability matters."""
    body = f"chaosk3s lab CA for {ctx.spec.subnet}".encode().hex()
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def status_response(ctx: NodeContext, code: int, reason: str,
                    message: str) -> web.Response:
    """A metav1 Status; from the fix on, K3s errors close the connection."""
    response = web.json_response(status_body(code, reason, message),
                                 status=code)
    if ctx.release.family != BUGGY:
        response.headers["Connection"] = "close"
        response.force_close()
    return response


class Supervisor:
    """Routes for one server node; the API server is optional."""

    def __init__(self, ctx: NodeContext, connect: Handler,
                 apiservers: Callable[[], Awaitable[list[str] | None]],
                 db_info: Callable[[], Awaitable[dict]],
                 apiserver=None):
        self.ctx = ctx
        self.apiserver = apiserver
        self._connect = connect
        self._apiservers = apiservers
        self._db_info = db_info

    def app(self) -> web.Application:
        app = web.Application()
        app[TIMINGS_KEY] = self.ctx.timings
        app[LOG_KEY] = self.ctx.log
        app.router.add_get("/ping", self._ping)
        app.router.add_get("/cacerts", self._cacerts)
        app.router.add_get("/v1-k3s/readyz", self._readyz)
        app.router.add_get("/v1-k3s/apiservers", self._apiservers_route)
        app.router.add_get("/v1-k3s/config", self._config)
        app.router.add_get("/v1-k3s/connect", self._connect)
        app.router.add_get("/db/info", self._db_info_route)
        app.router.add_route("*", "/{path:.*}", self._kubernetes)
        return app

    async def _ping(self, _request: web.Request) -> web.Response:
        return web.Response(text="pong")

    async def _cacerts(self, _request: web.Request) -> web.Response:
        return web.Response(text=lab_ca_pem(self.ctx))

    async def _readyz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _apiservers_route(self, _request: web.Request) -> web.Response:
        # Before the rework the answer is `null` when nothing is known.
        return web.Response(text=json.dumps(await self._apiservers()),
                            content_type="application/json")

    async def _config(self, _request: web.Request) -> web.Response:
        node = self.ctx.node
        return web.json_response({
            "role": node.role, "disableAPIServer": not node.runs_apiserver,
            "disableETCD": not node.runs_etcd,
            "version": self.ctx.release.version})

    async def _db_info_route(self, _request: web.Request) -> web.Response:
        return web.json_response(await self._db_info())

    async def _kubernetes(self, request: web.Request) -> web.StreamResponse:
        if self.apiserver is None:
            return status_response(self.ctx, 503, "ServiceUnavailable",
                                   "apiserver disabled")
        if not self.apiserver.ready:
            return status_response(self.ctx, 503, "ServiceUnavailable",
                                   "apiserver not ready")
        return await self.apiserver.handle(request)
