"""The resources the emulated API server serves, its errors and discovery."""

import json
from dataclasses import dataclass

from aiohttp import web

from chaosk3s.lab.k3s.etcdclient import EtcdError
from chaosk3s.lab.k3s.objects import NODE_LEASE_NAMESPACE, status_body


@dataclass(frozen=True)
class Resource:
    name: str  # plural, as in the URL
    kind: str
    group: str  # "" for the core group
    version: str
    namespaced: bool
    etcd: str  # key prefix under /registry/
    short_names: tuple[str, ...] = ()
    has_status: bool = False  # a /status subresource that owns .status
    create_on_update: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"/registry/{self.etcd}/{namespace}/{name}"
        return f"/registry/{self.etcd}/{name}"

    def prefix(self, namespace: str | None) -> str:
        if self.namespaced and namespace:
            return f"/registry/{self.etcd}/{namespace}/"
        return f"/registry/{self.etcd}/"


NODES = Resource("nodes", "Node", "", "v1", False, "minions", ("no",),
                 has_status=True)
NAMESPACES = Resource("namespaces", "Namespace", "", "v1", False,
                      "namespaces", ("ns",), has_status=True)
ENDPOINTS = Resource("endpoints", "Endpoints", "", "v1", True,
                     "services/endpoints", ("ep",), create_on_update=True)
EVENTS = Resource("events", "Event", "", "v1", True, "events", ("ev",))
# chaosk3s's consent and abort switch live in one (chaosk3s.consent)
CONFIGMAPS = Resource("configmaps", "ConfigMap", "", "v1", True,
                      "configmaps", ("cm",))
LEASES = Resource("leases", "Lease", "coordination.k8s.io", "v1", True,
                  "leases")
# What a drain needs (chaostoolkit-kubernetes' drain_nodes, kubectl
# drain): the pods on a node, and their eviction subresource. No kubelet
# of the lab runs them: they are records.
PODS = Resource("pods", "Pod", "", "v1", True, "pods", ("po",),
                has_status=True)
RESOURCES = (NODES, NAMESPACES, ENDPOINTS, EVENTS, CONFIGMAPS, LEASES,
             PODS)
BY_PATH = {(r.group, r.version, r.name): r for r in RESOURCES}
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public",
                      NODE_LEASE_NAMESPACE)
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


class ApiError(Exception):
    """A Kubernetes API failure, rendered as a metav1 Status."""

    def __init__(self, code: int, reason: str, message: str,
                 details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.details = code, reason, details

    def status(self) -> dict:
        body = status_body(self.code, self.reason, str(self))
        if self.details:
            body["details"] = self.details
        return body

    def response(self) -> web.Response:
        return web.Response(status=self.code, text=json.dumps(self.status()),
                            content_type="application/json")


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(res)} "{name}" not found',
                    _details(res, name))


def already_exists(res: Resource, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists",
                    f'{_qualified(res)} "{name}" already exists',
                    _details(res, name))


def conflict(res: Resource, name: str) -> ApiError:
    return ApiError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {_qualified(res)} "{name}": the '
        f"object has been modified; please apply your changes to the latest "
        f"version and try again", _details(res, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def storage_error(exc: EtcdError) -> ApiError:
    """etcd failures: 504 for timeouts, 500 for everything else."""
    message = str(exc)
    if "timed out" in message:
        return ApiError(504, "Timeout", message)
    return ApiError(500, "InternalError",
                    f"Internal error occurred: {message}")


def _qualified(res: Resource) -> str:
    return f"{res.name}.{res.group}" if res.group else res.name


def _details(res: Resource, name: str) -> dict:
    details = {"name": name, "kind": res.name}
    if res.group:
        details["group"] = res.group
    return details


def api_resource(res: Resource) -> list[dict]:
    """The APIResourceList entries (with the status subresource)."""
    entry = {"name": res.name, "singularName": res.kind.lower(),
             "namespaced": res.namespaced, "kind": res.kind,
             "verbs": VERBS}
    if res.short_names:
        entry["shortNames"] = list(res.short_names)
    entries = [entry]
    if res.has_status:
        entries.append({"name": f"{res.name}/status", "singularName": "",
                        "namespaced": res.namespaced, "kind": res.kind,
                        "verbs": ["get", "patch", "update"]})
    if res is PODS:
        entries.append({"name": "pods/eviction", "singularName": "",
                        "namespaced": True, "group": "policy",
                        "version": "v1", "kind": "Eviction",
                        "verbs": ["create"]})
    return entries


def resource_list(group: str, version: str) -> dict | None:
    found = [r for r in RESOURCES if (r.group, r.version) == (group, version)]
    if not found:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": [e for r in found for e in api_resource(r)]}


def api_versions(address: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}


def _group(name: str) -> dict:
    version = {"groupVersion": f"{name}/v1", "version": "v1"}
    return {"name": name, "versions": [version],
            "preferredVersion": version}


def api_group_list() -> dict:
    groups = sorted({r.group for r in RESOURCES if r.group})
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(g) for g in groups]}


def api_group(name: str) -> dict | None:
    if not any(r.group == name for r in RESOURCES):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}
