"""The agent load balancer per release family, over real loopback sockets.

Stand-in K3s servers greet with their name and then echo, so a client of
the LB can tell which server it reached and whether its connection is
still open. Health comes in through set_health, as the tunnel reports it.
"""

import asyncio
import json
import logging
import socket
import time
from contextlib import AsyncExitStack

from chaosk3s.lab.k3s.loadbalancer import LoadBalancer
from chaosk3s.lab.releases import BUGGY, FIX1, REWORK
from chaosk3s.lab.spec import Timings
from tests.unit.asynctools import make_log, run, until

FAST = Timings(lb_health_interval=0.2, lb_dial_timeout=1.0)
K3S = Timings(lb_health_interval=1.0, lb_dial_timeout=1.0)  # the real 1 s


class Echo:
    """A stand-in server: sends its name, then echoes."""

    def __init__(self, name: str, host: str):
        self.name, self.host, self.port = name, host, 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> "Echo":
        self._server = await asyncio.start_server(self._serve, self.host,
                                                  self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            writer.write(f"{self.name}\n".encode())
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


class Client:
    def __init__(self, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, server: str):
        self.reader, self.writer, self.server = reader, writer, server

    async def closed_within(self, seconds: float) -> bool:
        try:
            return await asyncio.wait_for(self.reader.read(), seconds) == b""
        except TimeoutError:
            return False
        except OSError:
            return True

    async def echoes(self) -> bool:
        self.writer.write(b"still-there\n")
        try:
            line = await asyncio.wait_for(self.reader.readline(), 2)
        except (TimeoutError, OSError):
            return False
        return line == b"still-there\n"




def free_address(host: str) -> str:
    """A loopback address where nothing listens (connections refused)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return f"{host}:{sock.getsockname()[1]}"




async def lb_for(stack: AsyncExitStack, default: str, family: str,
                 timings: Timings = FAST, state_file=None,
                 log: logging.Logger | None = None) -> LoadBalancer:
    lb = LoadBalancer(default, family, timings, state_file,
                      log or make_log(family)[0], listen=("127.0.0.1", 0))
    await lb.start()
    stack.push_async_callback(lb.close)
    return lb


async def servers(stack: AsyncExitStack, *names: str) -> list[Echo]:
    started = []
    for index, name in enumerate(names):
        echo = await Echo(name, f"127.0.0.{index + 2}").start()
        stack.push_async_callback(echo.stop)
        started.append(echo)
    return started


async def connect(lb: LoadBalancer, stack: AsyncExitStack) -> Client:
    host, port = lb.listen_address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    stack.callback(writer.close)
    line = await asyncio.wait_for(reader.readline(), 5)
    return Client(reader, writer, line.decode().strip())


async def seen_by_health_loop(timings: Timings) -> None:
    """Let at least one health pass see the current state."""
    await asyncio.sleep(1.5 * timings.lb_health_interval)



async def failover_to_default(stack: AsyncExitStack, family: str):
    """#11311 steps 1-3: C1 listed and healthy, then C1's tunnel drops."""
    e1, c1 = await servers(stack, "E1", "C1")
    lb = await lb_for(stack, e1.address, family, K3S)
    lb.update([c1.address])
    lb.set_health(c1.address, None)  # the tunnel starts
    lb.set_health(c1.address, True)
    first = await connect(lb, stack)
    assert first.server == "C1"
    await seen_by_health_loop(K3S)
    lb.set_health(c1.address, False)
    await c1.stop()  # C1's k3s stops: its tunnel drops, it refuses TCP
    assert await first.closed_within(3), "C1 connection not closed"
    fallback = await connect(lb, stack)
    assert fallback.server == "E1"
    await c1.start()  # same port again; its tunnel is not back yet
    return lb, e1, c1, fallback


def test_buggy_stays_stuck_on_default_after_c1_recovers():
    async def scenario():
        async with AsyncExitStack() as stack:
            lb, e1, c1, fallback = await failover_to_default(stack, BUGGY)
            lb.set_health(c1.address, True)  # C1's tunnel reconnects
            assert not await fallback.closed_within(3.0)
            assert await fallback.echoes()
            again = await connect(lb, stack)
            assert again.server == "E1", "buggy LB must stay stuck (B4)"
            snap = lb.snapshot()
            assert snap["current"] == e1.address
            assert snap["servers"][e1.address]["healthy"] is True
    run(scenario)


def test_fix1_closes_default_within_two_seconds_of_recovery():
    async def scenario():
        async with AsyncExitStack() as stack:
            lb, e1, c1, fallback = await failover_to_default(stack, FIX1)
            assert lb.snapshot()["servers"][e1.address]["healthy"] is False
            lb.set_health(c1.address, True)
            start = time.monotonic()
            assert await fallback.closed_within(2.5), "F3: default kept"
            assert time.monotonic() - start < 2.5
            again = await connect(lb, stack)
            assert again.server == "C1"
    run(scenario)


def test_fix1_unit_fail_over_sequence():
    """K3s's Test_UnitFailOver at @FIX1 (spec section 6)."""
    async def scenario():
        async with AsyncExitStack() as stack:
            default, node1, node2 = await servers(
                stack, "default", "node1", "node2")
            lb = await lb_for(stack, default.address, FIX1, K3S)
            lb.update([node1.address])
            first = await connect(lb, stack)
            assert first.server == "node1"
            lb.set_health(node1.address, None)
            await seen_by_health_loop(K3S)  # healthy -> unhealthy closes
            lb.set_health(node1.address, False)
            assert await first.closed_within(2.5)
            # all unhealthy: the health-ignoring lap prefers node1
            second = await connect(lb, stack)
            assert second.server == "node1"
            assert not await second.closed_within(2.0)  # no re-closing
            await node1.stop()
            assert await second.closed_within(2.0)
            third = await connect(lb, stack)
            assert third.server == "default"
            lb.update([node2.address])
            fourth = await connect(lb, stack)
            assert fourth.server == "node2"
            assert await third.closed_within(2.5)
            assert await fourth.echoes()
    run(scenario)


def test_rework_state_machine_and_standby_before_failed():
    async def scenario():
        async with AsyncExitStack() as stack:
            log, rec = make_log("rw")
            d, a = await servers(stack, "D", "A")
            b = free_address("127.0.0.4")  # refuses connections
            lb = await lb_for(stack, d.address, REWORK, FAST, log=log)
            lb.update([a.address, b])

            def state(address: str) -> str:
                return lb.snapshot()["servers"][address]["state"]
            assert [state(a.address), state(b), state(d.address)] == [
                "UNCHECKED", "UNCHECKED", "STANDBY"]
            first = await connect(lb, stack)
            assert first.server == "A"
            assert state(a.address) == "RECOVERING"
            lb.set_health(a.address, None)
            lb.set_health(a.address, True)  # it has a connection: ACTIVE
            await until(lambda: state(a.address) == "ACTIVE", 3)
            assert rec.has(f"Server {a.address}@RECOVERING->ACTIVE from "
                           f"successful health check")
            lb.set_health(a.address, False)
            await until(lambda: state(a.address) == "FAILED", 3)
            assert await first.closed_within(2)
            # B (UNCHECKED) refuses, then STANDBY D before FAILED A
            second = await connect(lb, stack)
            assert second.server == "D"
            assert state(b) == "FAILED"
            lb.set_health(a.address, True)
            await until(lambda: state(a.address) == "PREFERRED", 3)
            assert rec.has(f"Server {a.address}@FAILED->RECOVERING from "
                           f"successful health check")
            third = await connect(lb, stack)
            assert third.server == "A" and state(a.address) == "ACTIVE"
            assert await second.closed_within(2), "R6: STANDBY not closed"
            assert rec.has(f"Closing 1 connections to load balancer server "
                           f"{d.address}@STANDBY*")
    run(scenario)


def test_rework_removed_server_is_dropped_and_default_kept():
    async def scenario():
        async with AsyncExitStack() as stack:
            d, a, c = await servers(stack, "D", "A", "C")
            lb = await lb_for(stack, d.address, REWORK)
            lb.update([a.address, d.address])
            assert lb.snapshot()["servers"][d.address]["state"] == (
                "UNCHECKED")
            first = await connect(lb, stack)
            lb.update([c.address])
            snap = lb.snapshot()["servers"]
            assert a.address not in snap
            assert snap[d.address]["state"] == "STANDBY"
            assert await first.closed_within(2)
    run(scenario)


def read_json(path) -> dict:
    return json.loads(path.read_text())


def test_state_file_buggy_and_fix1(tmp_path):
    async def scenario():
        for family in (BUGGY, FIX1):
            path = tmp_path / family / "agent/etc/k3s-agent-load-balancer.json"
            async with AsyncExitStack() as stack:
                e1, c1 = await servers(stack, "E1", "C1")
                lb = await lb_for(stack, e1.address, family, state_file=path)
                assert read_json(path) == {
                    "ServerURL": f"https://{e1.address}",
                    "ServerAddresses": [e1.address], "Listener": None}
                assert "\n  " in path.read_text()  # indented
                lb.update([c1.address, c1.address, ""])
                assert read_json(path)["ServerAddresses"] == [c1.address]
                await lb.close()
                # a restart with the same default uses the saved list (B6)
                again = await lb_for(stack, e1.address, family,
                                     state_file=path)
                assert again.addresses == [c1.address]
                assert (await connect(again, stack)).server == "C1"
                await again.close()
                other = await lb_for(stack, c1.address, family,
                                     state_file=path)
                assert other.addresses == [c1.address]
                assert read_json(path)["ServerURL"] == f"https://{c1.address}"
    run(scenario)


def test_state_file_rework(tmp_path):
    async def scenario():
        path = tmp_path / "etc" / "k3s-agent-load-balancer.json"
        async with AsyncExitStack() as stack:
            e1, c1, c2 = await servers(stack, "E1", "C1", "C2")
            lb = await lb_for(stack, e1.address, REWORK, state_file=path)
            assert read_json(path) == {"ServerURL": f"https://{e1.address}",
                                       "ServerAddresses": []}
            lb.update([c2.address, c1.address])
            assert read_json(path)["ServerAddresses"] == sorted(
                [c1.address, c2.address])
            lb.set_default(c1.address)  # @RW writes on SetDefault too
            assert read_json(path)["ServerURL"] == f"https://{c1.address}"
            await lb.close()
            again = await lb_for(stack, c1.address, REWORK, state_file=path)
            assert again.addresses == sorted([c1.address, c2.address])
            stale = await lb_for(stack, e1.address, REWORK, state_file=path)
            assert stale.addresses == []  # ServerURL differs: not used
            assert read_json(path)["ServerAddresses"] == []
    run(scenario)


def black_hole(stack: AsyncExitStack) -> str:
    """A listener whose full backlog drops SYNs: connects hang."""
    sock = socket.socket()
    stack.callback(sock.close)
    sock.bind(("127.0.0.6", 0))
    sock.listen(0)
    for _ in range(3):
        filler = socket.socket()
        stack.callback(filler.close)
        filler.setblocking(False)
        try:
            filler.connect(sock.getsockname())
        except BlockingIOError:
            pass
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def test_dial_timeout_fix1_versus_none_at_buggy():
    async def scenario():
        async with AsyncExitStack() as stack:
            (e1,) = await servers(stack, "E1")
            hole = black_hole(stack)
            fix1 = await lb_for(stack, e1.address, FIX1)  # 1 s dial timeout
            fix1.update([hole])
            start = time.monotonic()
            assert (await connect(fix1, stack)).server == "E1"  # F7
            assert 1.5 < time.monotonic() - start < 5  # two timed-out dials
            buggy = await lb_for(stack, e1.address, BUGGY)
            buggy.update([hole])
            try:
                await asyncio.wait_for(connect(buggy, stack), 3)
                raise AssertionError("buggy LB dial returned (B8)")
            except TimeoutError:
                pass
            start = time.monotonic()
            await buggy.close()  # must cancel the hanging dial
            assert time.monotonic() - start < 2
    run(scenario)
