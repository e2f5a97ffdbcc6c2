"""The API server's list cache: cheap lists that are still consistent.

The real API server answers lists from its watch cache; without one, every
list of 5,000 Nodes moves 13 MB out of etcd (base64 in JSON through the
gateway) and the emulated server, not the client asking, sets the pace of
any probe benchmarked against it.

Each list first asks etcd, with quorum, for the keys under the prefix that
changed since the cache's revision (values of those keys only, plus the
count of all keys). A count that does not add up means keys were deleted,
and the prefix is read again whole. So a list still fails when etcd has no
quorum and never serves data older than the request, as with the real
server's consistent reads from cache.
"""

import asyncio
import json
from dataclasses import dataclass, field

from chaosk3s.lab.k3s.etcdclient import KV, EtcdClient

_META = b'{"metadata":{'


@dataclass
class Entry:
    """One object as the cache holds it."""

    raw: bytes  # the stored JSON with its resourceVersion spliced in
    # What readers derived from raw (a table row, its metadata), kept
    # until the object changes so unchanged objects are never re-parsed.
    derived: dict = field(default_factory=dict)

    @classmethod
    def of(cls, obj: dict) -> "Entry":
        return cls(json.dumps(obj, separators=(",", ":")).encode())

    def object(self) -> dict:
        """A fresh decoded copy: callers may change it."""
        return json.loads(self.raw)


def decode(kv: KV) -> dict:
    """The stored object with its resourceVersion filled in."""
    obj = json.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


def raw_with_rv(kv: KV) -> bytes:
    """The stored JSON with its resourceVersion spliced in, unparsed.

    Values written by the store start with metadata; others are parsed
    and re-encoded.
    """
    if kv.value.startswith(_META) and kv.value[len(_META):][:1] == b'"':
        rv = b'"resourceVersion":"%d",' % kv.mod_revision
        return _META + rv + kv.value[len(_META):]
    return json.dumps(decode(kv), separators=(",", ":")).encode()


class PrefixCache:
    """Every object under one etcd prefix, brought up to date per read."""

    def __init__(self, etcd: EtcdClient, prefix: str):
        self.etcd, self.prefix = etcd, prefix
        self.revision = 0  # everything up to here is reflected
        self._entries: dict[str, Entry] = {}
        self._sorted: list[Entry] | None = None
        self._lock = asyncio.Lock()  # one refresh at a time, in order

    async def entries(self) -> tuple[list[Entry], int]:
        """The objects in key order, current as of a quorum read made
        now, and that read's revision. Raises EtcdError without quorum."""
        async with self._lock:
            if self.revision:
                changed, count, revision = await self.etcd.changes_since(
                    self.prefix, self.revision)
                added = sum(kv.key not in self._entries for kv in changed)
                if count == len(self._entries) + added:
                    self._apply(changed, revision)
                    return self._sorted, revision
            kvs, revision = await self.etcd.range_prefix(self.prefix)
            # read whole: rebuilt even when nothing is left (the last
            # object deleted must not be listed again)
            self._entries, self._sorted = {}, None
            self._apply(kvs, revision)
            return self._sorted, revision

    def _apply(self, kvs: list[KV], revision: int) -> None:
        for kv in kvs:
            self._entries[kv.key] = Entry(raw_with_rv(kv))
        if kvs or self._sorted is None:
            self._sorted = [self._entries[k] for k in sorted(self._entries)]
        self.revision = revision
