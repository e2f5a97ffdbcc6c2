"""Async client for etcd 3.5's v3 JSON gateway (grpc-gateway over HTTP).

Reads are linearizable and every request carries etcd's "require leader"
metadata, so a member cut off from quorum fails fast with "etcdserver: no
leader" instead of answering from stale data: an API server on the wrong
side of a partition must fail, never silently serve old state.
"""

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from chaosk3s.errors import (
    EtcdError,
    EtcdUnavailable,
    KeyExists,
    RevisionConflict,
    WatchCompacted,
)

# grpc-gateway turns Grpc-Metadata-* headers into gRPC metadata; etcd then
# rejects requests (and cancels watches) on members that have no leader.
_HEADERS = {"Grpc-Metadata-hasleader": "true"}
# gRPC codes after which another member may still succeed.
_RETRY_CODES = {4, 14}  # DeadlineExceeded, Unavailable
_CONNECT_TIMEOUT = 1.0  # a dead member must not stall fail-over


@dataclass(slots=True)
class KV:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


@dataclass(slots=True)
class WatchEvent:
    type: str  # "PUT" or "DELETE"
    kv: KV
    prev_kv: KV | None
    revision: int  # the revision of the message that carried the event


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def prefix_end(prefix: str) -> str:
    """The range_end that selects every key starting with prefix."""
    raw = bytearray(prefix.encode())
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return _b64(b"\0")  # whole keyspace
    raw[-1] += 1
    return _b64(bytes(raw))


def _kv(raw: dict) -> KV:
    return KV(key=base64.b64decode(raw["key"]).decode(),
              value=base64.b64decode(raw.get("value", "")),
              create_revision=int(raw.get("create_revision", 0)),
              mod_revision=int(raw.get("mod_revision", 0)),
              version=int(raw.get("version", 0)),
              lease=int(raw.get("lease", 0)))


def _revision(reply: dict) -> int:
    return int(reply.get("header", {}).get("revision", 0))


class EtcdClient:
    """One aiohttp session; fails over between endpoints in order."""

    def __init__(self, endpoints: list[str], timeout: float = 5.0):
        if not endpoints:
            raise EtcdError("no etcd endpoints given")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout = timeout
        self._current = 0
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        # Created lazily so the client can be built outside a running loop.
        if self._session is None or self._session.closed:
            # No connection cap: every API watch holds one etcd stream.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                trust_env=False, headers=_HEADERS,
                json_serialize=json.dumps)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _order(self) -> list[int]:
        n = len(self.endpoints)
        return [(self._current + i) % n for i in range(n)]

    async def call(self, path: str, body: dict) -> dict:
        """POST to the gateway; try each member until one answers."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        errors: list[str] = []
        for index in self._order():
            left = deadline - loop.time()
            if left <= 0:
                errors.append("etcdserver: request timed out")
                break
            endpoint = self.endpoints[index]
            try:
                reply = await self._post(endpoint + path, body, left)
            except (aiohttp.ClientError, TimeoutError, OSError,
                    ValueError) as exc:
                errors.append(f"{endpoint}: {_describe(exc)}")
                continue
            failure = _failure(reply)
            if failure is not None:
                code, message = failure
                if code in _RETRY_CODES:
                    errors.append(f"{endpoint}: {message}")
                    continue
                raise EtcdError(message)
            self._current = index
            return reply
        raise EtcdUnavailable("etcd cluster unavailable: " + "; ".join(errors))

    async def _post(self, url: str, body: dict, timeout: float) -> dict:
        limit = aiohttp.ClientTimeout(
            total=timeout, sock_connect=min(timeout, _CONNECT_TIMEOUT))
        async with self.session.post(url, json=body, timeout=limit) as resp:
            return json.loads(await resp.read())

    async def get(self, key: str) -> KV | None:
        reply = await self.call("/v3/kv/range", {"key": _b64(key)})
        kvs = reply.get("kvs") or []
        return _kv(kvs[0]) if kvs else None

    async def range_prefix(self, prefix: str, revision: int = 0
                           ) -> tuple[list[KV], int]:
        """Every key under prefix (at revision, 0 = now) and the revision."""
        body = {"key": _b64(prefix), "range_end": prefix_end(prefix)}
        if revision:
            body["revision"] = revision
        reply = await self.call("/v3/kv/range", body)
        return [_kv(raw) for raw in reply.get("kvs") or []], _revision(reply)

    async def changes_since(self, prefix: str, revision: int
                            ) -> tuple[list[KV], int, int]:
        """(keys modified after revision, with values; total keys under
        prefix; read revision), in one quorum read.

        etcd counts the whole range before it drops the older keys, so a
        cache can tell from the count whether keys were deleted.
        """
        reply = await self.call("/v3/kv/range", {
            "key": _b64(prefix), "range_end": prefix_end(prefix),
            "min_mod_revision": revision + 1})
        return ([_kv(raw) for raw in reply.get("kvs") or []],
                int(reply.get("count", 0)), _revision(reply))

    async def revision(self) -> int:
        """The cluster's current revision, read with quorum."""
        reply = await self.call("/v3/kv/range", {
            "key": _b64("\0"), "count_only": True})
        return _revision(reply)

    async def put(self, key: str, value: bytes | str, lease: int = 0) -> int:
        body = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        return _revision(await self.call("/v3/kv/put", body))

    async def put_many(self, items: list[tuple[str, bytes | str]]) -> int:
        """Put many keys in one transaction (etcd allows 128 operations
        per transaction by default; callers batch below that)."""
        reply = await self.call("/v3/kv/txn", {"success": [
            {"request_put": {"key": _b64(k), "value": _b64(v)}}
            for k, v in items]})
        return _revision(reply)

    async def _txn(self, compare: dict, success: dict) -> dict:
        return await self.call("/v3/kv/txn", {
            "compare": [compare], "success": [success]})

    async def create(self, key: str, value: bytes | str, lease: int = 0
                     ) -> int:
        """Put only if the key does not exist; raise KeyExists otherwise."""
        put = {"key": _b64(key), "value": _b64(value)}
        if lease:
            put["lease"] = str(lease)
        reply = await self._txn(
            {"target": "CREATE", "key": _b64(key), "create_revision": "0"},
            {"request_put": put})
        if not reply.get("succeeded"):
            raise KeyExists(f"key {key} already exists")
        return _revision(reply)

    async def cas(self, key: str, value: bytes | str, mod_revision: int,
                  lease: int = 0) -> int:
        """Put only if the key's mod_revision is still mod_revision."""
        put = {"key": _b64(key), "value": _b64(value)}
        if lease:
            put["lease"] = str(lease)
        reply = await self._txn(
            {"target": "MOD", "key": _b64(key),
             "mod_revision": str(mod_revision)}, {"request_put": put})
        if not reply.get("succeeded"):
            raise RevisionConflict(
                f"key {key} is no longer at revision {mod_revision}")
        return _revision(reply)

    async def delete(self, key: str, mod_revision: int | None = None
                     ) -> tuple[KV | None, int]:
        """Delete (guarded by mod_revision when given); (prev kv, rev)."""
        request = {"key": _b64(key), "prev_kv": True}
        if mod_revision is None:
            reply = await self.call("/v3/kv/deleterange", request)
        else:
            txn = await self._txn(
                {"target": "MOD", "key": _b64(key),
                 "mod_revision": str(mod_revision)},
                {"request_delete_range": request})
            if not txn.get("succeeded"):
                raise RevisionConflict(
                    f"key {key} is no longer at revision {mod_revision}")
            reply = txn["responses"][0]["response_delete_range"]
            reply["header"] = txn.get("header", {})
        prev = reply.get("prev_kvs") or []
        return (_kv(prev[0]) if prev else None), _revision(reply)

    async def lease_grant(self, ttl: float) -> int:
        reply = await self.call("/v3/lease/grant",
                                {"TTL": max(1, round(ttl))})
        return int(reply["ID"])

    async def lease_keepalive(self, lease: int) -> int:
        """Refresh a lease; its remaining TTL (0 = it had expired)."""
        reply = await self.call("/v3/lease/keepalive", {"ID": str(lease)})
        return int(reply.get("result", reply).get("TTL", 0))

    async def lease_revoke(self, lease: int) -> None:
        try:
            await self.call("/v3/lease/revoke", {"ID": str(lease)})
        except EtcdError as exc:
            if "not found" not in str(exc):
                raise

    async def watch(self, prefix: str, start_revision: int
                    ) -> AsyncIterator[WatchEvent]:
        """Events under prefix from start_revision (with prev kv).

        Ends with WatchCompacted, or EtcdUnavailable when the stream
        breaks or the member loses its leader. Close it with aclose().
        """
        body = {"create_request": {
            "key": _b64(prefix), "range_end": prefix_end(prefix),
            "start_revision": str(start_revision), "prev_kv": True}}
        resp = await self._open_watch(body)
        try:
            async for message in _messages(resp):
                for event in _watch_events(message):
                    yield event
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise EtcdUnavailable(
                f"etcd watch broken: {_describe(exc)}") from None
        finally:
            resp.close()
        raise EtcdUnavailable("etcd watch stream ended")

    async def _open_watch(self, body: dict) -> aiohttp.ClientResponse:
        errors = []
        limit = aiohttp.ClientTimeout(
            total=None, sock_connect=_CONNECT_TIMEOUT)
        for index in self._order():
            url = self.endpoints[index] + "/v3/watch"
            try:
                resp = await self.session.post(url, json=body, timeout=limit)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                errors.append(f"{url}: {_describe(exc)}")
                continue
            self._current = index
            return resp
        raise EtcdUnavailable("etcd cluster unavailable: " + "; ".join(errors))


async def _messages(resp: aiohttp.ClientResponse) -> AsyncIterator[dict]:
    """The gateway frames each stream message as one JSON line."""
    buffer = b""
    async for chunk in resp.content.iter_any():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)


def _watch_events(message: dict) -> list[WatchEvent]:
    failure = _failure(message)
    if failure is not None:
        raise EtcdUnavailable(failure[1])
    result = message.get("result", {})
    if int(result.get("compact_revision", 0)):
        raise WatchCompacted(int(result["compact_revision"]))
    if result.get("canceled"):
        raise EtcdUnavailable("etcd watch canceled: " + str(
            result.get("cancel_reason") or "etcdserver: no leader"))
    revision = _revision(result)
    return [WatchEvent(type=raw.get("type", "PUT"), kv=_kv(raw["kv"]),
                       prev_kv=_kv(raw["prev_kv"]) if "prev_kv" in raw
                       else None, revision=revision)
            for raw in result.get("events") or []]


def _failure(reply: dict) -> tuple[int, str] | None:
    """(gRPC code, message) of an error reply; the gateway uses two
    shapes: flat {error, code, message} and {error: {grpc_code, ...}}."""
    if "error" not in reply and "code" not in reply:
        return None
    error = reply.get("error")
    if isinstance(error, dict):
        return int(error.get("grpc_code", 0)), str(error.get("message"))
    return int(reply.get("code", 0)), str(reply.get("message") or error)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "etcdserver: request timed out"
    return str(exc) or type(exc).__name__
