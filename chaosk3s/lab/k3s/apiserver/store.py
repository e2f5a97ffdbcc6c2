"""Kubernetes objects in etcd: JSON under /registry/, resourceVersion =
the etcd mod_revision, optimistic concurrency through etcd transactions."""

import copy
import json
import secrets
import uuid
from collections.abc import Callable

from chaosk3s.lab.k3s.apiserver.cache import Entry, PrefixCache, decode
from chaosk3s.lab.k3s.apiserver.resources import (
    PODS,
    ApiError,
    Resource,
    already_exists,
    bad_request,
    conflict,
    not_found,
    storage_error,
)
from chaosk3s.lab.k3s.etcdclient import (
    KV,
    EtcdClient,
    EtcdError,
    KeyExists,
    RevisionConflict,
)
from chaosk3s.lab.k3s.objects import now_rfc3339

# A patch racing other writers is re-applied on the fresh object, as the
# real API server does; bounded so a hot object cannot spin forever.
MUTATE_ATTEMPTS = 5
Mutation = Callable[[dict], dict]


def encode(obj: dict) -> bytes:
    # Like Kubernetes, never store the resourceVersion inside the value;
    # metadata goes first so the list cache can splice it back unparsed.
    meta = obj.get("metadata", {})
    stored = {"metadata": {k: v for k, v in meta.items()
                           if k != "resourceVersion"}, **{
        k: v for k, v in obj.items() if k != "metadata"}}
    return json.dumps(stored, separators=(",", ":")).encode()


def _requested_rv(obj: dict) -> int | None:
    rv = obj.get("metadata", {}).get("resourceVersion")
    if rv in (None, ""):
        return None
    try:
        return int(rv)
    except (TypeError, ValueError):
        raise bad_request(f"invalid resourceVersion {rv!r}") from None


class Store:
    """CRUD of Kubernetes objects; every failure is an ApiError."""

    def __init__(self, etcd: EtcdClient):
        self.etcd = etcd
        self._caches: dict[str, PrefixCache] = {}

    async def _etcd(self, coro):
        try:
            return await coro
        except (KeyExists, RevisionConflict):
            raise
        except EtcdError as exc:
            raise storage_error(exc) from None

    async def revision(self) -> int:
        """The current etcd revision, read with quorum."""
        return await self._etcd(self.etcd.revision())

    async def get_kv(self, res: Resource, ns: str | None, name: str) -> KV:
        kv = await self._etcd(self.etcd.get(res.key(ns, name)))
        if kv is None:
            raise not_found(res, name)
        return kv

    async def get(self, res: Resource, ns: str | None, name: str) -> dict:
        return decode(await self.get_kv(res, ns, name))

    async def list_entries(self, res: Resource, ns: str | None
                           ) -> tuple[list[Entry], int]:
        """Every object of a collection, from the list cache (which reads
        etcd with quorum first), and the list's revision."""
        prefix = res.prefix(ns)
        if prefix not in self._caches:
            self._caches[prefix] = PrefixCache(self.etcd, prefix)
        return await self._etcd(self._caches[prefix].entries())

    async def list(self, res: Resource, ns: str | None
                   ) -> tuple[list[dict], int]:
        entries, revision = await self.list_entries(res, ns)
        return [entry.object() for entry in entries], revision

    async def create(self, res: Resource, ns: str | None, obj: dict
                     ) -> dict:
        obj = self._prepare_create(res, ns, obj)
        name = obj["metadata"]["name"]
        try:
            revision = await self._etcd(self.etcd.create(
                res.key(ns, name), encode(obj)))
        except KeyExists:
            raise already_exists(res, name) from None
        obj["metadata"]["resourceVersion"] = str(revision)
        return obj

    def _prepare_create(self, res: Resource, ns: str | None,
                        obj: dict) -> dict:
        if not isinstance(obj, dict):
            raise bad_request("the body must be a JSON object")
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(422, "Invalid", f"{res.kind} is invalid: "
                               f"metadata.name: Required value")
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if res.namespaced:
            meta["namespace"] = ns
        meta.pop("resourceVersion", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        obj["kind"], obj["apiVersion"] = res.kind, res.api_version
        if res.has_status:  # defaulted like the real API server does
            obj.setdefault("spec", {})
            obj.setdefault("status", {})
        if res is PODS:  # kube-apiserver's podStrategy.PrepareForCreate:
            # a new pod's status is reset to Pending, whatever was sent
            # (its qosClass is not computed here); the kubelet, or a
            # client, sets it later through pods/status
            obj["status"] = {"phase": "Pending"}
        return obj

    async def update(self, res: Resource, ns: str | None, name: str,
                     obj: dict, subresource: str | None = None) -> dict:
        """PUT: conditional on metadata.resourceVersion when it is set."""
        if obj.get("metadata", {}).get("name", name) != name:
            raise bad_request("the name of the object does not match the "
                              "name on the URL")
        wanted = _requested_rv(obj)
        try:
            kv = await self.get_kv(res, ns, name)
        except ApiError as exc:
            if exc.code == 404 and res.create_on_update and not subresource:
                return await self.create(res, ns, obj)
            raise
        if wanted is not None and wanted != kv.mod_revision:
            raise conflict(res, name)
        new = merge_subresource(res, decode(kv), obj, subresource)
        return await self._write(res, ns, name, new, kv.mod_revision)

    async def mutate(self, res: Resource, ns: str | None, name: str,
                     change: Mutation, subresource: str | None = None
                     ) -> dict:
        """Read, change and compare-and-swap, retrying on races."""
        for _attempt in range(MUTATE_ATTEMPTS):
            kv = await self.get_kv(res, ns, name)
            old = decode(kv)
            new = change(copy.deepcopy(old))
            wanted = _requested_rv(new)
            if wanted is not None and wanted != kv.mod_revision:
                raise conflict(res, name)
            new = merge_subresource(res, old, new, subresource)
            try:
                return await self._write(res, ns, name, new, kv.mod_revision)
            except ApiError as exc:
                if exc.reason != "Conflict":
                    raise
        raise conflict(res, name)

    async def _write(self, res: Resource, ns: str | None, name: str,
                     new: dict, revision: int) -> dict:
        try:
            rev = await self._etcd(self.etcd.cas(
                res.key(ns, name), encode(new), revision))
        except RevisionConflict:
            raise conflict(res, name) from None
        new["metadata"]["resourceVersion"] = str(rev)
        return new

    async def delete(self, res: Resource, ns: str | None, name: str
                     ) -> dict:
        prev, _rev = await self._etcd(self.etcd.delete(res.key(ns, name)))
        if prev is None:
            raise not_found(res, name)
        return decode(prev)


def merge_subresource(res: Resource, old: dict, new: dict,
                      subresource: str | None) -> dict:
    """What a write may change: /status only status; the main resource
    everything but status (for types with a status subresource)."""
    if subresource == "status":
        merged = copy.deepcopy(old)
        merged["status"] = new.get("status", {})
    else:
        merged = copy.deepcopy(new)
        if res.has_status:
            merged["status"] = copy.deepcopy(old.get("status", {}))
    meta = merged.setdefault("metadata", {})
    for field in ("uid", "creationTimestamp", "name", "namespace"):
        if field in old.get("metadata", {}):
            meta[field] = old["metadata"][field]
    merged["kind"], merged["apiVersion"] = res.kind, res.api_version
    return merged
