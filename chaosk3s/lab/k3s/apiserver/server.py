"""The emulated Kubernetes API server: the REST subset K3s nodes and
kubectl use, with every object in etcd (see store).

The supervisor forwards every non-k3s path to ``APIServer.handle``.
"""

import asyncio
import contextlib
import json
from dataclasses import dataclass

from aiohttp import web

from chaosk3s.lab.k3s.apiserver import resources
from chaosk3s.lab.k3s.apiserver.cache import Entry
from chaosk3s.lab.k3s.apiserver.patch import PATCH_TYPES, apply_patch
from chaosk3s.lab.k3s.apiserver.resources import (
    INITIAL_NAMESPACES,
    NAMESPACES,
    PODS,
    ApiError,
    Resource,
    bad_request,
    storage_error,
)
from chaosk3s.lab.k3s.apiserver.select import (
    combine,
    field_selector,
    label_selector,
)
from chaosk3s.lab.k3s.apiserver.store import Store
from chaosk3s.lab.k3s.apiserver.tables import table, wants_table
from chaosk3s.lab.k3s.apiserver.watch import WatchStream
from chaosk3s.lab.k3s.context import SUPERVISOR_PORT, NodeContext
from chaosk3s.lab.k3s.controllers import Controllers
from chaosk3s.lab.k3s.etcdclient import EtcdClient, EtcdError

HEALTH_PATHS = ("/healthz", "/readyz", "/livez")


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    res: Resource
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool  # the legacy /watch/ prefix


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(status=status, content_type="application/json",
                        body=json.dumps(body, separators=(",", ":")))


class APIServer:
    """Serves any Kubernetes API path; runs the control-plane
    controllers (endpoint reconciler, apiaddresses, node lifecycle)."""

    def __init__(self, ctx: NodeContext, etcd: EtcdClient):
        self.ctx, self.etcd = ctx, etcd
        self.store = Store(etcd)
        self.controllers = Controllers(ctx, etcd, self.store)
        self.ready = False
        self._closing = asyncio.Event()
        self._bootstrap: asyncio.Task | None = None

    async def start(self) -> None:
        """Returns at once; ``ready`` turns True once etcd answered."""
        self._bootstrap = asyncio.create_task(self._ensure_namespaces())
        await self.controllers.start()

    async def close(self) -> None:
        """Ends watches and stops the controllers (the endpoint lease is
        left to expire, as on a stopped K3s server)."""
        self._closing.set()
        self.ready = False
        if self._bootstrap:
            self._bootstrap.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._bootstrap
        await self.controllers.close()

    async def _ensure_namespaces(self) -> None:
        while not self._closing.is_set():
            try:
                for name in INITIAL_NAMESPACES:
                    await self._create_namespace(name)
                self.ready = True
                self.ctx.log.info("apiserver ready")
                return
            except ApiError as exc:
                self.ctx.log.warning("apiserver waiting for etcd: %s", exc)
                await asyncio.sleep(self.ctx.timings.endpoint_reconcile)

    async def _create_namespace(self, name: str) -> None:
        obj = {"metadata": {"name": name}, "spec": {"finalizers": [
            "kubernetes"]}, "status": {"phase": "Active"}}
        try:
            await self.store.create(NAMESPACES, None, obj)
        except ApiError as exc:
            if exc.reason != "AlreadyExists":
                raise

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._route(request)
        except ApiError as exc:
            return exc.response()
        except EtcdError as exc:
            return storage_error(exc).response()

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path.startswith(HEALTH_PATHS):
            return await self._health()
        if path == "/version":
            return _json(self._version())
        discovery = self._discovery(path)
        if discovery is not None:
            return _json(discovery)
        target = _parse_target(path)
        if target is None:
            raise ApiError(404, "NotFound", "the server could not find the "
                           "requested resource")
        return await self._serve(request, target)

    async def _health(self) -> web.Response:
        # Like kube-apiserver's etcd check: not ok without a quorum read.
        try:
            await self.etcd.revision()
        except EtcdError:
            return web.Response(status=500, text="[-]etcd failed: reason "
                                "withheld\nhealthz check failed")
        return web.Response(text="ok")

    def _version(self) -> dict:
        release = self.ctx.release
        return {"major": "1", "minor": str(release.minor),
                "gitVersion": release.version, "gitCommit": "chaosk3s-lab",
                "gitTreeState": "clean", "buildDate": "2024-11-12T00:00:00Z",
                "goVersion": "go1.22.8", "compiler": "gc",
                "platform": "linux/amd64"}

    def _discovery(self, path: str) -> dict | None:
        parts = path.strip("/").split("/")
        if parts == ["api"]:
            return resources.api_versions(
                f"{self.ctx.node.address}:{SUPERVISOR_PORT}")
        if parts == ["api", "v1"]:
            return resources.resource_list("", "v1")
        if parts == ["apis"]:
            return resources.api_group_list()
        if len(parts) == 2 and parts[0] == "apis":
            return resources.api_group(parts[1])
        if len(parts) == 3 and parts[0] == "apis":
            return resources.resource_list(parts[1], parts[2])
        return None

    async def _serve(self, request: web.Request, target: Target
                     ) -> web.StreamResponse:
        method = request.method
        if target.name is None and method == "GET":
            return await self._list(request, target)
        if target.name is None and method == "POST" and not (
                target.subresource or target.watch_path):
            return _json(await self.store.create(
                target.res, target.namespace, await _body(request)), 201)
        if target.name is not None and method == "GET" and \
                target.watch_path:
            return await self._list(request, target)
        if target.subresource == "eviction" and target.res is PODS and \
                method == "POST":
            return await self._evict(request, target)
        if target.name is not None:
            return await self._item(request, target)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow "
                       "this method on the requested resource")

    async def _item(self, request: web.Request, target: Target
                    ) -> web.StreamResponse:
        res, ns, name = target.res, target.namespace, target.name
        sub = target.subresource
        if sub not in (None, "status") or sub and not res.has_status:
            raise ApiError(404, "NotFound", "the server could not find the "
                           "requested resource")
        if request.method == "GET":
            obj = await self.store.get(res, ns, name)
            if wants_table(request.headers.get("Accept", "")):
                rv = obj["metadata"]["resourceVersion"]
                return _json(table(res, [Entry.of(obj)], rv))
            return _json(obj)
        if request.method == "PUT":
            body = await _body(request)
            return _json(await self.store.update(res, ns, name, body, sub))
        if request.method == "PATCH":
            return _json(await self._patch(request, target))
        if request.method == "DELETE" and sub is None:
            return _json(await self.store.delete(res, ns, name))
        raise ApiError(405, "MethodNotAllowed", f"the server does not allow "
                       f"method {request.method} on the requested resource")

    async def _evict(self, request: web.Request, target: Target
                     ) -> web.Response:
        """POST pods/NAME/eviction: with no PodDisruptionBudget to
        consult, the pod is deleted and the answer is a Status Success
        with 201, as kube-apiserver's eviction REST
        (pkg/registry/core/pod/storage/eviction.go) gives."""
        body = await _body(request)
        # a body without kind is decoded as the Eviction it must be (the
        # generic create handler defaults the kind; chaosk8s sends none)
        if not isinstance(body, dict) or body.get("kind") not in (
                None, "Eviction"):
            raise bad_request("the body of a pods/eviction request must be "
                              "an Eviction (policy/v1)")
        named = (body.get("metadata") or {}).get("name")
        if named not in (None, target.name):
            raise bad_request(f"name in the Eviction ({named}) does not "
                              f"match the pod ({target.name})")
        await self.store.delete(target.res, target.namespace, target.name)
        return _json({"kind": "Status", "apiVersion": "v1", "metadata": {},
                      "status": "Success", "code": 201}, 201)

    async def _patch(self, request: web.Request, target: Target) -> dict:
        content_type = request.content_type
        if content_type not in PATCH_TYPES:
            raise ApiError(415, "UnsupportedMediaType", f"the body of the "
                           f"request was in an unknown format - accepted "
                           f"media types include: {', '.join(PATCH_TYPES)}")
        patch = await _body(request)
        return await self.store.mutate(
            target.res, target.namespace, target.name,
            lambda obj: apply_patch(content_type, obj, patch),
            target.subresource)

    async def _list(self, request: web.Request, target: Target
                    ) -> web.StreamResponse:
        query = request.query
        predicate = combine(label_selector(query.get("labelSelector")),
                            field_selector(query.get("fieldSelector")))
        if target.watch_path or query.get("watch") in ("1", "true"):
            if target.name:
                predicate = combine(predicate, field_selector(
                    f"metadata.name={target.name}"))
            timeout = _float(query.get("timeoutSeconds"))
            stream = WatchStream(self.store, target.res, target.namespace,
                                 predicate, self._closing)
            return await stream.serve(
                request, query.get("resourceVersion", ""), timeout)
        entries, revision = await self.store.list_entries(
            target.res, target.namespace)
        if predicate is not None:
            entries = [e for e in entries if predicate(e.object())]
        if wants_table(request.headers.get("Accept", "")):
            return _json(table(target.res, entries, str(revision),
                               include_object=query.get("includeObject",
                                                        "Metadata")))
        # Spliced from the cached bytes: 5,000 Nodes are not re-encoded.
        head = json.dumps({"kind": f"{target.res.kind}List",
                           "apiVersion": target.res.api_version,
                           "metadata": {"resourceVersion": str(revision)}},
                          separators=(",", ":"))
        body = b"".join((head[:-1].encode(), b',"items":[',
                         b",".join(e.raw for e in entries), b"]}"))
        return web.Response(body=body, content_type="application/json")


async def _body(request: web.Request) -> object:
    try:
        return json.loads(await request.read())
    except ValueError as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}"
                          ) from None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        raise bad_request(f"invalid number {value!r}") from None


def _parse_target(path: str) -> Target | None:
    """Split /api/v1/... or /apis/GROUP/VERSION/... into a Target."""
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) > 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[0] == "apis" and len(parts) > 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    watch = rest[0] == "watch"
    rest = rest[1:] if watch else rest
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in (
            "status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    res = resources.BY_PATH.get((group, version, rest[0] if rest else ""))
    if res is None or len(rest) > 3 or (namespace and not res.namespaced):
        return None
    return Target(res=res, namespace=namespace,
                  name=rest[1] if len(rest) > 1 else None,
                  subresource=rest[2] if len(rest) > 2 else None,
                  watch_path=watch)
