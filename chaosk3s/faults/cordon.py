"""A node's cordon and drain, and its undo, through chaostoolkit-kubernetes.

The FaultSession records a cordon before `drain` calls
chaosk8s.node.actions.drain_nodes (a cordon: a PATCH of the node's
spec.unschedulable, then an eviction of each pod on it that a controller
other than a DaemonSet owns); the heal (`undo`) calls uncordon_node and
reads spec.unschedulable back through chaosk3s's own client.

Pointing chaosk8s at the run's cluster: chaosk8s builds a client from
the environment on every call (chaosk8s.create_k8s_api_client): a
kubeconfig file named by $KUBECONFIG or ~/.kube/config first, loaded by
kubernetes.config.load_kube_config with no path, that is from
KUBE_CONFIG_DEFAULT_LOCATION, which the kubernetes package reads from
$KUBECONFIG once, when it is imported; else in a pod
(CHAOSTOOLKIT_IN_POD) the service account; else KUBERNETES_HOST. Left
alone it could cordon a node of whichever cluster the operator's own
kubeconfig names. So each call runs inside `pointed`: the target's
kubeconfig (both the variable and the package's default) and the
context that answered are set for the call and put back after, under
one lock; before anything is sent, the client chaosk8s makes is checked
to talk to the server (and proxy) chaosk3s's own client does, else the
call is refused with nothing sent.
"""

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from chaosk3s.errors import ChaosK3sError, KubeUnavailable, SpecError
from chaosk3s.kube import Kube, in_pod_only
from chaosk3s.readiness import utc_now

logger = logging.getLogger("chaostoolkit")
KIND = "cordon"
_lock = threading.Lock()  # the environment is the process's


def unschedulable(kube: Kube, node: str) -> bool:
    """The node's spec.unschedulable, read from the API."""
    found = kube.call("read_node", timeout=5, name=node)
    return bool((found.get("spec") or {}).get("unschedulable"))


def pods_on(kube: Kube, node: str) -> list[dict]:
    """The pods bound to node (raw JSON)."""
    listing = kube.call("list_pod_for_all_namespaces", timeout=10,
                        field_selector=f"spec.nodeName={node}")
    return listing.get("items") or []


def pod_name(pod: dict) -> str:
    return f"{pod['metadata'].get('namespace')}/{pod['metadata']['name']}"


def unmanaged(pods: list[dict]) -> list[str]:
    """The pods no controller owns: a drain cannot evict them."""
    return sorted(pod_name(p) for p in pods if not any(
        o.get("controller") for o in p["metadata"].get("ownerReferences")
        or []))


def answering_context(kube: Kube, node: str) -> str | None:
    """The first of the target's contexts whose API server answers."""
    errors = []
    for context in kube.contexts:
        try:
            Kube(kube.kubeconfig, [context]).call("read_node", timeout=5,
                                                  name=node)
            return context
        except KubeUnavailable as exc:
            errors.append(str(exc))
    raise KubeUnavailable("no API server answered for the cordon of "
                          f"{node}: " + "; ".join(errors))


@contextmanager
def pointed(kube: Kube, context: str | None) -> Iterator[dict]:
    """chaosk8s's secrets for a call to the API context reaches, with
    the environment it reads set for the call (see the module's doc)."""
    from chaosk8s import create_k8s_api_client
    from kubernetes.config import kube_config
    in_pod = kube.kubeconfig is None and context is None and in_pod_only()
    path = None if in_pod else (kube.kubeconfig or
                                kube_config.KUBE_CONFIG_DEFAULT_LOCATION)
    with _lock, _environment(path):
        secrets = {"KUBERNETES_CONTEXT": context}
        _same_server(kube, context,
                     create_k8s_api_client(secrets).configuration)
        yield secrets


@contextmanager
def _environment(kubeconfig: str | None) -> Iterator[None]:
    """$KUBECONFIG and the kubernetes package's default path set to
    kubeconfig (None: in a pod, CHAOSTOOLKIT_IN_POD instead), then
    everything chaosk8s changes put back: the variables, the default
    path, the client's default configuration and the class attributes
    it sets (debug, verify_ssl)."""
    from kubernetes import client
    from kubernetes.config import kube_config
    keys = ("KUBECONFIG", "CHAOSTOOLKIT_IN_POD")
    saved = {key: os.environ.get(key) for key in keys}
    default_path = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    default_client = getattr(client.Configuration, "_default", None)
    attributes = {k: vars(client.Configuration).get(k)
                  for k in ("debug", "verify_ssl")}
    try:
        os.environ.pop("CHAOSTOOLKIT_IN_POD", None)
        os.environ["KUBECONFIG"] = kubeconfig or ""
        if kubeconfig is None:
            os.environ["CHAOSTOOLKIT_IN_POD"] = "true"
        else:
            kube_config.KUBE_CONFIG_DEFAULT_LOCATION = kubeconfig
        yield
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = default_path
        client.Configuration.set_default(default_client)
        for key, value in attributes.items():
            if value is not None:
                setattr(client.Configuration, key, value)
            elif key in vars(client.Configuration):
                delattr(client.Configuration, key)


def _same_server(kube: Kube, context: str | None, made) -> None:
    ours = kube.server(context)
    theirs = (made.host, made.proxy)
    if theirs != ours:
        raise SpecError(
            f"chaostoolkit-kubernetes would reach {theirs[0]} (proxy "
            f"{theirs[1]}), not the target's API server {ours[0]} (proxy "
            f"{ours[1]}) of kubeconfig {kube.kubeconfig or '(default)'} "
            f"context {context or '(current)'}; nothing was cordoned. Give "
            f"the inventory one kubeconfig file (not a list) and check "
            f"KUBERNETES_* and CHAOSTOOLKIT_IN_POD in the environment")


def refuse_if_cordoned(kube: Kube, node: str) -> None:
    """A node someone else cordoned is under their maintenance: the run
    must not drain it, nor uncordon it when it is done."""
    if unschedulable(kube, node):
        raise SpecError(
            f"{node} is already cordoned (spec.unschedulable): someone "
            f"else's maintenance; chaosk3s would uncordon it afterwards. "
            f"Uncordon it first (kubectl uncordon {node}) or leave it out "
            f"of the selection; nothing was changed")


def drain(kube: Kube, node: str, timeout: float) -> dict:
    """Cordon and drain node with chaosk8s's drain_nodes; the pods on it
    before and after, as evidence."""
    from chaosk8s.node.actions import drain_nodes
    context = answering_context(kube, node)
    before = pods_on(kube, node)
    started = utc_now()
    try:
        with pointed(kube, context) as secrets:
            drain_nodes(name=node, timeout=max(1, int(float(timeout))),
                        secrets=secrets)
    except Exception as exc:
        bare = unmanaged(before)
        hint = f" (pods no controller owns, which a drain cannot evict: " \
            f"{', '.join(bare)}; delete or move them first)" if bare else ""
        raise ChaosK3sError(f"{type(exc).__name__}: {exc}{hint}") from exc
    names = sorted(map(pod_name, before))
    kept = sorted(map(pod_name, pods_on(kube, node)))
    evicted = sorted(set(names) - set(kept))
    logger.info("cordoned and drained %s: evicted %s, kept %s", node,
                ", ".join(evicted) or "nothing", ", ".join(kept) or "nothing")
    return {"node": node, "context": context, "drain_started_at": started,
            "drained_at": utc_now(), "pods_before": names,
            "evicted": evicted, "kept": kept}


def undo(kube: Kube, node: str, read_only: bool) -> None:
    """Uncordon node with chaosk8s's uncordon_node (read_only: only
    read), then read it back; raise while it is still cordoned."""
    from chaosk8s.node.actions import uncordon_node
    if not read_only and unschedulable(kube, node):
        with pointed(kube, answering_context(kube, node)) as secrets:
            uncordon_node(name=node, secrets=secrets)
    if unschedulable(kube, node):
        raise ChaosK3sError(f"{node} is still cordoned (spec.unschedulable "
                            f"is true)")
