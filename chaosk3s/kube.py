"""The only door to the Kubernetes API.

Reads are raw JSON (``_preload_content=False``) rather than the client's
models: deserialising thousands of V1Node objects is what makes
model-based readiness probes slow on large clusters.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from chaosk3s.errors import ChaosK3sError


class KubeUnavailable(ChaosK3sError):
    """No API server of the target answered."""


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
        self._clients: dict[str | None, client.CoreV1Api] = {}

    def _core(self, context: str | None) -> client.CoreV1Api:
        if context not in self._clients:
            api = config.new_client_from_config(
                config_file=self.kubeconfig, context=context)
            self._clients[context] = client.CoreV1Api(api)
        return self._clients[context]

    def api_client(self, context: str | None) -> client.ApiClient:
        """One context's ApiClient, for API groups beyond core/v1 (the
        game-day Lease lock uses coordination.k8s.io/v1)."""
        return self._core(context).api_client

    def call(self, method: str, timeout: float | tuple = 10, **kwargs):
        """Raw JSON of a CoreV1Api call on the first context that answers."""
        reply = self._open(method, timeout, **kwargs)
        try:
            return json.loads(reply.data)
        finally:
            reply.release_conn()

    def _open(self, method: str, timeout: float | tuple, **kwargs):
        """The raw response of a CoreV1Api call, first context that
        answers."""
        return self._first_answer(lambda core: getattr(core, method)(
            _preload_content=False, _request_timeout=timeout, **kwargs))

    def _first_answer(self, call):
        errors = []
        for context in self.contexts:
            try:
                return call(self._core(context))
            except ApiException as exc:
                if exc.status and exc.status < 500:
                    raise
                errors.append(f"{context or 'default'}: HTTP {exc.status} "
                              f"{exc.reason}")
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                errors.append(f"{context or 'default'}: {exc}")
        raise KubeUnavailable("no API server of the target answered: "
                              + "; ".join(errors))

    def list_nodes(self, label_selector: str = "") -> dict:
        """The NodeList as JSON (items are plain dicts)."""
        return self.call("list_node", label_selector=label_selector)

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
        finally:
            reply.release_conn()


def _json_lines(reply) -> Iterator[dict]:
    buffer = b""
    for chunk in reply.stream(65536, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)
    if buffer.strip():
        yield json.loads(buffer)
