"""EtcdClient against real etcd members on loopback."""

import asyncio
import contextlib
import time

import pytest

from chaosk3s.lab.k3s.etcdclient import (
    EtcdClient,
    EtcdUnavailable,
    KeyExists,
    RevisionConflict,
    WatchCompacted,
)
from tests.unit.conftest import free_port


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _with_client(endpoints, body, timeout: float = 5.0):
    client = EtcdClient(endpoints, timeout=timeout)
    try:
        return await body(client)
    finally:
        await client.close()


def test_kv_operations(etcd_single):
    async def body(c: EtcdClient):
        assert await c.get("/t/a") is None
        rev = await c.put("/t/a", "1")
        kv = await c.get("/t/a")
        assert (kv.value, kv.mod_revision, kv.create_revision) == (
            b"1", rev, rev)
        with pytest.raises(KeyExists):
            await c.create("/t/a", "2")
        created = await c.create("/t/b", b"\x00bin")
        assert (await c.get("/t/b")).value == b"\x00bin"
        with pytest.raises(RevisionConflict):
            await c.cas("/t/a", "3", rev - 1)
        swapped = await c.cas("/t/a", "3", rev)
        assert swapped > created
        await c.put("/u/other", "x")
        kvs, read_rev = await c.range_prefix("/t/")
        assert [k.key for k in kvs] == ["/t/a", "/t/b"]
        assert read_rev == await c.revision()
        old, _ = await c.range_prefix("/t/", revision=rev)
        assert [k.value for k in old] == [b"1"]
        with pytest.raises(RevisionConflict):
            await c.delete("/t/a", mod_revision=rev)
        prev, _ = await c.delete("/t/a", mod_revision=swapped)
        assert prev.value == b"3"
        assert (await c.delete("/t/missing"))[0] is None
        # The count is of the whole prefix; only newer keys come back.
        assert await c.changes_since("/t/", swapped) == (
            [], 1, await c.revision())
        added = await c.put("/t/c", "4")
        changed, count, read_rev = await c.changes_since("/t/", swapped)
        assert ([(k.key, k.value, k.mod_revision) for k in changed],
                count, read_rev) == ([("/t/c", b"4", added)], 2, added)
    run(_with_client(etcd_single.endpoints, body))


def test_watch_events_and_compaction(etcd_single):
    async def body(c: EtcdClient):
        start = await c.put("/w/a", "1")
        await c.put("/w/a", "2")
        await c.delete("/w/a")
        await c.put("/x/ignored", "z")
        events = c.watch("/w/", start)
        seen = []
        async for event in events:
            seen.append((event.type, event.kv.key, event.kv.value,
                         event.prev_kv.value if event.prev_kv else None))
            if len(seen) == 3:
                break
        await events.aclose()
        assert seen == [("PUT", "/w/a", b"1", None),
                        ("PUT", "/w/a", b"2", b"1"),
                        ("DELETE", "/w/a", b"", b"2")]
        now = await c.put("/w/b", "1")
        await c.call("/v3/kv/compaction", {"revision": str(now)})
        with pytest.raises(WatchCompacted) as compacted:
            async for _event in c.watch("/w/", start):
                pass
        assert compacted.value.compact_revision == now
    run(_with_client(etcd_single.endpoints, body))


def test_leases(etcd_single):
    async def body(c: EtcdClient):
        lease = await c.lease_grant(2)
        await c.put("/l/key", "v", lease=lease)
        assert (await c.get("/l/key")).lease == lease
        assert await c.lease_keepalive(lease) >= 1
        await c.lease_revoke(lease)
        assert await c.get("/l/key") is None
        assert await c.lease_keepalive(lease) == 0
        await c.lease_revoke(lease)  # revoking twice is harmless
    run(_with_client(etcd_single.endpoints, body))


def test_fails_over_to_a_live_endpoint(etcd_single):
    dead = f"http://127.0.0.3:{free_port('127.0.0.3')}"

    async def body(c: EtcdClient):
        await c.put("/f/a", "1")
        assert (await c.get("/f/a")).value == b"1"
        assert c.endpoints[c._current] == etcd_single.endpoints[0]
        events = c.watch("/f/", 1)
        first = await events.__anext__()
        await events.aclose()
        assert first.kv.key == "/f/a"
    run(_with_client([dead, *etcd_single.endpoints], body))


def test_unreachable_cluster_fails_clearly():
    dead = [f"http://127.0.0.3:{free_port('127.0.0.3')}",
            f"http://127.0.0.4:{free_port('127.0.0.4')}"]

    async def body(c: EtcdClient):
        with pytest.raises(EtcdUnavailable) as failed:
            await c.get("/a")
        assert "127.0.0.3" in str(failed.value)
        assert "127.0.0.4" in str(failed.value)
        with pytest.raises(EtcdUnavailable):
            async for _event in c.watch("/a", 1):
                pass
    run(_with_client(dead, body))


def test_no_quorum_fails_reads_writes_and_watches(etcd_factory):
    cluster = etcd_factory(["127.0.0.2", "127.0.0.3", "127.0.0.4"])

    async def body(c: EtcdClient):
        await c.put("/q/a", "1")
        events = c.watch("/q/", 1)
        assert (await events.__anext__()).kv.key == "/q/a"
        cluster.stop_member(1)
        cluster.stop_member(2)
        began = time.monotonic()
        for attempt in (c.get("/q/a"), c.put("/q/b", "2"),
                        c.range_prefix("/q/")):
            with pytest.raises(EtcdUnavailable) as failed:
                await attempt
            assert "etcdserver" in str(failed.value) or \
                "refused" in str(failed.value)
        with pytest.raises(EtcdUnavailable):
            async for _event in events:
                pass
        with contextlib.suppress(Exception):
            await events.aclose()
        assert time.monotonic() - began < 30
    run(_with_client(cluster.endpoints, body, timeout=4.0))
