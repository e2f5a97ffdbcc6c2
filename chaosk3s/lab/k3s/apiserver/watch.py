"""Kubernetes watches fed by etcd watches, streamed as JSON lines.

Each HTTP watch holds its own etcd watch from resourceVersion + 1, so the
events a client sees are exactly etcd's, in etcd's order.
"""

import asyncio
import contextlib
import json

from aiohttp import web

from chaosk3s.lab.k3s.apiserver.cache import decode
from chaosk3s.lab.k3s.apiserver.resources import ApiError, Resource
from chaosk3s.lab.k3s.apiserver.select import Predicate
from chaosk3s.lab.k3s.apiserver.store import Store
from chaosk3s.lab.k3s.etcdclient import (
    EtcdError,
    WatchCompacted,
    WatchEvent,
)

# How soon a watch notices its client went away (aiohttp does not cancel
# handlers on disconnect) and frees its etcd stream.
DISCONNECT_POLL = 1.0
_END = object()


def _event_type(event: WatchEvent) -> str:
    if event.type == "DELETE":
        return "DELETED"
    return "ADDED" if event.prev_kv is None else "MODIFIED"


def translate(event: WatchEvent, predicate: Predicate | None
              ) -> dict | None:
    """The Kubernetes event for an etcd event, seen through a selector:
    an object leaving the selection is DELETED, entering it ADDED."""
    kind = _event_type(event)
    if kind == "DELETED":
        obj = decode(event.prev_kv) if event.prev_kv else {"metadata": {}}
        obj["metadata"]["resourceVersion"] = str(event.kv.mod_revision
                                                 or event.revision)
        new_ok, old_ok = False, predicate is None or predicate(obj)
    else:
        obj = decode(event.kv)
        new_ok = predicate is None or predicate(obj)
        old_ok = event.prev_kv is not None and (
            predicate is None or predicate(decode(event.prev_kv)))
    if new_ok and old_ok:
        kind = "MODIFIED"
    elif new_ok:
        kind = "ADDED"
    elif old_ok:
        kind = "DELETED"
    else:
        return None
    return {"type": kind, "object": obj}


def _line(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


def _error_event(exc: Exception) -> dict:
    if isinstance(exc, WatchCompacted):
        error = ApiError(410, "Expired", f"too old resource version: "
                         f"{exc.compact_revision}")
    elif isinstance(exc, ApiError):
        error = exc
    else:
        error = ApiError(500, "InternalError",
                         f"Internal error occurred: {exc}")
    return {"type": "ERROR", "object": error.status()}


class WatchStream:
    """One HTTP watch: optional initial ADDED events, then etcd events."""

    def __init__(self, store: Store, res: Resource, namespace: str | None,
                 predicate: Predicate | None, closing: asyncio.Event):
        self.store, self.res, self.namespace = store, res, namespace
        self.predicate, self.closing = predicate, closing
        self.queue: asyncio.Queue = asyncio.Queue()

    async def serve(self, request: web.Request, resource_version: str,
                    timeout: float | None) -> web.StreamResponse:
        initial: list[dict] = []
        if resource_version in ("", "0"):
            items, revision = await self.store.list(self.res, self.namespace)
            initial = [{"type": "ADDED", "object": obj} for obj in items
                       if self.predicate is None or self.predicate(obj)]
        else:
            revision = _parse_rv(resource_version)
            # A quorum read first: without quorum the watch fails with a
            # 5xx Status instead of a stream that never delivers.
            await self.store.revision()
        resp = web.StreamResponse(headers={
            "Content-Type": "application/json", "Cache-Control": "no-cache"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if initial:
            await resp.write(b"".join(_line(e) for e in initial))
        pump = asyncio.create_task(self._pump(revision + 1))
        try:
            await self._stream(request, resp, timeout)
        except (ConnectionError, RuntimeError):
            pass  # the client went away
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
        return resp

    async def _pump(self, start: int) -> None:
        prefix = self.res.prefix(self.namespace)
        events = self.store.etcd.watch(prefix, start)
        try:
            async for event in events:
                self.queue.put_nowait(event)
        except EtcdError as exc:
            self.queue.put_nowait(exc)
        finally:
            self.queue.put_nowait(_END)
            await events.aclose()

    async def _stream(self, request: web.Request, resp: web.StreamResponse,
                      timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        while not self.closing.is_set():
            wait = DISCONNECT_POLL
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
                if wait <= 0:
                    return
            if request.transport is None or request.transport.is_closing():
                return
            try:
                item = await asyncio.wait_for(self.queue.get(), wait)
            except TimeoutError:
                continue
            if not await self._emit(resp, [item, *self._drain()]):
                return

    def _drain(self) -> list:
        items = []
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items

    async def _emit(self, resp: web.StreamResponse, items: list) -> bool:
        """Write a batch; False once the stream has ended."""
        lines, more = [], True
        for item in items:
            if item is _END:
                more = False
                break
            if isinstance(item, Exception):
                lines.append(_line(_error_event(item)))
                more = False
                break
            event = translate(item, self.predicate)
            if event is not None:
                lines.append(_line(event))
        if lines:
            await resp.write(b"".join(lines))
        return more


def _parse_rv(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, "BadRequest",
                       f"invalid resourceVersion {value!r}") from None
