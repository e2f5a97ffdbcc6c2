"""The lab kubelet's status sync, against a stand-in API on loopback.

Kubernetes' kubelet tries a status update five times per sync, each with
the heartbeat client's timeout, and from the second failed try on closes
its connections (onRepeatedHeartbeatFailure), so later tries dial again.
"""

import asyncio
import logging
import time

import pytest
from aiohttp import web

from chaosk3s.lab.k3s.context import LB_PORT, NodeContext
from chaosk3s.lab.k3s.kubelet import STATUS_RETRIES, Kubelet
from chaosk3s.lab.spec import DEFAULT_NODES, parse_spec
from chaosk3s.lab.state import LabState
from tests.unit.asynctools import run

pytestmark = pytest.mark.filterwarnings(
    "ignore::aiohttp.web.NotAppKeyWarning")


class FakeAPI:
    """Answers every node GET with 503 (or holds it past the timeout),
    noting the client port of each request: one port per connection."""

    def __init__(self, hang: bool):
        self.hang, self.ports, self.runner = hang, [], None

    async def _node(self, request: web.Request) -> web.Response:
        self.ports.append(request.transport.get_extra_info("peername")[1])
        if self.hang:
            await asyncio.sleep(30)
        return web.json_response({"kind": "Status", "message":
                                  "apiserver disabled", "code": 503},
                                 status=503)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v1/nodes/{name}", self._node)
        self.runner = web.AppRunner(app, access_log=None,
                                    shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", LB_PORT,
                          reuse_address=True).start()


def agent_context(tmp_path, timeout: float) -> NodeContext:
    spec = parse_spec({"nodes": DEFAULT_NODES,
                       "timings": {"status_update_timeout": timeout}})
    return NodeContext(spec, spec.node("agent-0"),
                       LabState(tmp_path / "state"),
                       logging.getLogger("test.kubelet"))


def sync_once(tmp_path, hang: bool, timeout: float = 0.3
              ) -> tuple[list[int], float]:
    result = {}

    async def scenario():
        api = FakeAPI(hang)
        await api.start()
        kubelet = Kubelet(agent_context(tmp_path, timeout))
        kubelet._connect()
        try:
            began = time.monotonic()
            await kubelet._sync_status()
            result["took"] = time.monotonic() - began
        finally:
            await kubelet._session.close()
            await api.runner.cleanup()
        result["ports"] = api.ports
    run(scenario)
    return result["ports"], result["took"]


def test_connections_are_closed_from_the_second_failed_try(tmp_path):
    ports, _took = sync_once(tmp_path, hang=False)
    assert len(ports) == STATUS_RETRIES
    # tries 1 and 2 share the persistent connection; after the second
    # failure each try is on a new one
    assert ports[0] == ports[1]
    assert len(set(ports[1:])) == STATUS_RETRIES - 1


def test_each_try_is_bounded_by_the_heartbeat_timeout(tmp_path):
    ports, took = sync_once(tmp_path, hang=True, timeout=0.3)
    assert len(ports) == STATUS_RETRIES
    assert STATUS_RETRIES * 0.3 <= took < STATUS_RETRIES * 0.3 + 1.5
