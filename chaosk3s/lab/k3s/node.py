"""Assembles one emulated K3s node and runs it until SIGTERM."""

import asyncio
import signal

from aiohttp import web

from chaosk3s.lab.k3s.context import SUPERVISOR_PORT, NodeContext


async def run(ctx: NodeContext) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = None
    if ctx.node.is_server:
        app = web.Application()
        app.router.add_get("/ping", _ping)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", SUPERVISOR_PORT).start()
    ctx.log.info("k3s %s (%s, %s) running", ctx.node.name, ctx.node.role,
                 ctx.release.version)
    await stop.wait()
    if runner:
        await runner.cleanup()
    ctx.log.info("k3s stopped")
    return 0


async def _ping(_request: web.Request) -> web.Response:
    return web.Response(text="pong")
