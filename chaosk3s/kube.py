"""The only door to the Kubernetes API.

Reads are raw JSON (``_preload_content=False``) rather than the client's
models: deserialising thousands of V1Node objects is what makes
model-based readiness probes slow on large clusters. A readiness check
goes further and asks for the Table that `kubectl get nodes` prints: one
short row per node instead of whole Node objects.

The client library's errors stop here: an API server that answers with an
error status is KubeRejected (its HTTP status kept), none answering is
KubeUnavailable, a kubeconfig that cannot be used is a SpecError; each
with the client's exception as its cause.
"""

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from chaosk3s.errors import (
    KubeRejected,
    KubeUnavailable,
    SpecError,
)

# The Table form, with plain JSON as the fallback for servers without it.
TABLE_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                "application/json")
# A bounded read (Kube.call_within) waits at most this long in all, over
# every context: what the end of a run may spend on one API read before
# its rollbacks or its heal.
BOUNDED_SECONDS = 5.0


@dataclass(frozen=True)
class NodeState:
    name: str
    ready: str  # "True", "False" or "Unknown" (missing = "Unknown")
    transition: str | None  # the Ready condition's lastTransitionTime
    resource_version: str


def ready_status(node: dict) -> tuple[str, str | None]:
    for condition in node.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return (condition.get("status", "Unknown"),
                    condition.get("lastTransitionTime"))
    return "Unknown", None


def node_state(node: dict) -> NodeState:
    ready, transition = ready_status(node)
    meta = node["metadata"]
    return NodeState(meta["name"], ready, transition,
                     meta.get("resourceVersion", ""))


class Kube:
    """API access for one target; fails over between kubeconfig contexts.

    A lab or an HA cluster may list one context per API server; when the
    current one does not answer, the next is tried.
    """

    def __init__(self, kubeconfig: str | None, contexts: list[str | None]):
        self.kubeconfig = kubeconfig
        self.contexts = contexts or [None]
        self._clients: dict[str | None, client.ApiClient] = {}
        self._single: dict[str | None, client.ApiClient] = {}  # no retries

    def _client(self, context: str | None, retries: bool = True
                ) -> client.ApiClient:
        """The context's client; retries=False: one whose requests urllib3
        never retries (its default retries each three times, so a
        request to an API that hangs lasts four of its timeouts)."""
        cache = self._clients if retries else self._single
        if context not in cache:
            try:
                cache[context] = _api_client(self.kubeconfig, context,
                                             retries)
            except ConfigException as exc:
                raise SpecError(
                    f"cannot use kubeconfig {self.kubeconfig or '(default)'}"
                    f" with context {context or '(current)'}: {exc}; check "
                    f"the inventory's kubeconfig and contexts") from exc
        return cache[context]

    def server(self, context: str | None) -> tuple[str, str | None]:
        """The API server URL and proxy context's client talks to."""
        configuration = self._client(context).configuration
        return configuration.host, configuration.proxy

    def call(self, method: str, timeout: float | tuple = 10,
             api: type = client.CoreV1Api, **kwargs):
        """Raw JSON of a generated API call (CoreV1Api unless `api` says
        another group, e.g. CoordinationV1Api for the game-day Lease) on
        the first context that answers."""
        return _read_json(self._open(method, timeout, api, **kwargs))

    def _open(self, method: str, timeout: float | tuple,
              api: type = client.CoreV1Api, **kwargs):
        """The raw response of a generated API call, first context that
        answers."""
        return self._first_answer(lambda api_client: getattr(
            api(api_client), method)(_preload_content=False,
                                     _request_timeout=timeout, **kwargs))

    def call_within(self, method: str, seconds: float = BOUNDED_SECONDS,
                    **kwargs):
        """Like call, bounded: each context tried once, without retries,
        in an equal share of the time left (the first that refuses at
        once leaves the next more), all within `seconds`; past them,
        KubeUnavailable. The share bounds the connect and each wait for
        bytes, so an API that hangs, accepting connections and never
        answering, costs at most `seconds` (one that trickles a byte per
        share could last longer)."""
        deadline = time.monotonic() + seconds
        untried = [len(self.contexts)]

        def once(api_client: client.ApiClient):
            share = max(deadline - time.monotonic(), 0.0) / untried[0]
            untried[0] -= 1
            if share <= 0:
                raise KubeUnavailable(f"not answered within {seconds:g}s")
            return _read_json(getattr(client.CoreV1Api(api_client), method)(
                _preload_content=False, _request_timeout=share,
                **kwargs))

        return self._first_answer(once, retries=False)

    def _first_answer(self, call, retries: bool = True):
        """call(ApiClient) on each context in turn until one answers; a
        4xx is the server's answer and raised, not failed over."""
        errors, cause = [], None
        for context in self.contexts:
            try:
                return call(self._client(context, retries))
            except ApiException as exc:
                if exc.status and exc.status < 500:
                    raise rejected(exc) from exc
                errors.append(f"{context or 'default'}: HTTP {exc.status} "
                              f"{exc.reason}")
                cause = exc
            except (urllib3.exceptions.HTTPError, OSError,
                    KubeUnavailable) as exc:
                errors.append(f"{context or 'default'}: {exc}")
                cause = exc
        raise KubeUnavailable("no API server of the target answered: "
                              + "; ".join(errors)) from cause

    def list_nodes(self, label_selector: str = "", wait: float = 0
                   ) -> dict:
        """The NodeList as JSON (items are plain dicts). With `wait`, ride
        out an outage that long (a control-plane restart), asking again
        every second, before KubeUnavailable."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return self.call("list_node", label_selector=label_selector)
            except KubeUnavailable:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(1)

    def node_readiness(self, label_selector: str = "") -> dict[str, bool]:
        """Whether each node's Ready condition is True, from the STATUS
        column of the node Table (includeObject=None: rows only, about a
        tenth of the NodeList's bytes). "Ready" leads the column exactly
        when the condition is True; ",SchedulingDisabled" may follow."""
        query = [("includeObject", "None")]
        if label_selector:
            query.append(("labelSelector", label_selector))
        listing = _read_json(self._first_answer(lambda api_client: _get(
            api_client, "/api/v1/nodes", query, TABLE_ACCEPT, 10)))
        if listing.get("kind") != "Table":  # a server without Tables
            return {s.name: s.ready == "True"
                    for s in map(node_state, listing.get("items", []))}
        columns = [c["name"] for c in listing["columnDefinitions"]]
        name, status = columns.index("Name"), columns.index("Status")
        return {row["cells"][name]:
                row["cells"][status].split(",")[0] == "Ready"
                for row in listing.get("rows") or []}

    def watch_nodes(self, resource_version: str, timeout_seconds: int,
                    label_selector: str = "") -> Iterator[dict]:
        """Raw watch events ({"type", "object"}) until the server ends it."""
        reply = self._open(
            "list_node", (5, timeout_seconds + 5), watch=True,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds, label_selector=label_selector,
            allow_watch_bookmarks=True)
        try:
            yield from _json_lines(reply)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnavailable(f"the node watch broke off: {exc}"
                                  ) from exc
        finally:
            reply.release_conn()


def _api_client(kubeconfig: str | None, context: str | None,
                retries: bool = True) -> client.ApiClient:
    """kubectl's order: the kubeconfig given, else $KUBECONFIG or
    ~/.kube/config, else (in a pod, e.g. a game-day CronJob) the pod's
    service account. retries=False: urllib3 retries nothing (the
    client's Configuration.retries goes to its PoolManager; None there
    means urllib3's default, three)."""
    configuration = client.Configuration()
    if not retries:
        configuration.retries = False
    if kubeconfig is None and context is None and in_pod_only():
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    return config.new_client_from_config(
        config_file=kubeconfig, context=context,
        client_configuration=configuration)


def in_pod_only() -> bool:
    default = os.environ.get("KUBECONFIG") or os.path.expanduser(
        config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION)
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not any(
        os.path.exists(path) for path in default.split(os.pathsep))


def _get(api: client.ApiClient, path: str, query: list[tuple[str, str]],
         accept: str, timeout: float):
    """A raw GET with the client's auth and TLS, for what the generated
    methods cannot ask (includeObject); non-2xx raises like they do."""
    request = api.param_serialize("GET", path, query_params=query,
                                  header_params={"Accept": accept},
                                  auth_settings=["BearerToken"])
    reply = api.call_api(*request, _request_timeout=timeout)
    if not 200 <= reply.status <= 299:
        reply.read()
        raise ApiException.from_response(http_resp=reply, body=None,
                                          data=None)
    return reply.response


def rejected(exc: ApiException) -> KubeRejected:
    """The API's own message (a metav1 Status) when it sent one."""
    message = exc.reason or ""
    try:
        message = json.loads(exc.body or "{}").get("message") or message
    except (ValueError, AttributeError):
        pass
    return KubeRejected(int(exc.status), str(exc.reason or ""), message)


def _read_json(reply) -> object:
    try:
        return json.loads(reply.data)
    except ValueError as exc:  # a proxy's error page, a cut-off answer
        raise KubeUnavailable(f"the API answered something that is not "
                              f"JSON: {exc}") from exc
    finally:
        reply.release_conn()


def _json_lines(reply) -> Iterator[dict]:
    buffer = b""
    for chunk in reply.stream(65536, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield _json_line(line)
    if buffer.strip():
        yield _json_line(buffer)


def _json_line(line: bytes) -> dict:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise KubeUnavailable(f"a watch sent a line that is not JSON: "
                              f"{exc}") from exc


def config_map(namespace: str, name: str, data: dict,
               resource_version: str | None = None) -> dict:
    """The body of a ConfigMap chaosk3s writes, labelled as managed by
    it; with resource_version a replace applies only over that version
    (the API answers 409 to a writer that came in between)."""
    metadata = {"name": name, "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "chaosk3s"}}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
            "data": data}
