"""What the cluster is, read from the Kubernetes API and the inventory.

Roles come from the node-role labels K3s sets, the join server from the
``k3s.io/node-args`` annotation (``--server``) or ``K3S_URL`` in
``k3s.io/node-env``; the inventory adds how to reach each node.
"""

import json
import logging
from urllib.parse import urlparse

from chaosk3s.errors import SpecError
from chaosk3s.inventory import Inventory
from chaosk3s.model import Node, Topology
from chaosk3s.names import node_name

ROLE_LABEL = "node-role.kubernetes.io/"
logger = logging.getLogger("chaostoolkit")


def role_of(labels: dict[str, str]) -> str:
    control = f"{ROLE_LABEL}control-plane" in labels or \
        f"{ROLE_LABEL}master" in labels
    etcd = f"{ROLE_LABEL}etcd" in labels
    if control and etcd:
        return "server"
    if control:
        return "control-plane"
    return "etcd" if etcd else "agent"


def join_url(annotations: dict) -> str | None:
    """The --server a node was started with, as K3s records it; raises
    ValueError when the annotations are there but malformed."""
    args = _json(annotations, "k3s.io/node-args", list, [])
    for flag in ("--server", "-s"):
        if flag in args[:-1]:
            url = args[args.index(flag) + 1]
            if not isinstance(url, str):
                raise ValueError(f"k3s.io/node-args: {flag} is {url!r}")
            return url
    env = _json(annotations, "k3s.io/node-env", dict, {})
    url = env.get("K3S_URL")
    if url is not None and not isinstance(url, str):
        raise ValueError(f"k3s.io/node-env: K3S_URL is {url!r}")
    return url or None


def _json(annotations: dict, key: str, kind: type, default):
    raw = annotations.get(key)
    if raw is None:
        return default
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise ValueError(f"{key} is not JSON: {str(raw)[:80]!r}") from None
    if not isinstance(value, kind):
        raise ValueError(f"{key} is {type(value).__name__} "
                         f"{str(value)[:80]!r}, not a JSON {kind.__name__}")
    return value


def internal_address(node: dict) -> str | None:
    addresses = internal_addresses(node)
    return addresses[0] if addresses else None


def internal_addresses(node: dict) -> list[str]:
    """Every InternalIP of the node (both families on a dual-stack
    cluster), then those of K3s's k3s.io/internal-ip annotation."""
    found = [a.get("address") for a in
             node.get("status", {}).get("addresses") or []
             if isinstance(a, dict) and a.get("type") == "InternalIP"]
    annotations = node["metadata"].get("annotations") or {}
    extra = annotations.get("k3s.io/internal-ip", "")
    if isinstance(extra, str):
        found += [a.strip() for a in extra.split(",")]
    return list(dict.fromkeys(a for a in found if a and isinstance(a, str)))


def build_topology(api_nodes: list[dict], inventory: Inventory) -> Topology:
    """Join API facts with the inventory; the API wins on roles. A node
    whose K3s annotations are malformed is kept (without a join server)
    and named in the topology's problems and the log, never fatal: a
    heal must not stop at one odd node."""
    by_address, by_name = {}, {}
    for item in api_nodes:
        # A name reaches command lines ({node} in inventory commands).
        name = node_name(item["metadata"]["name"], "the API lists a node")
        by_name[name] = item
        for address in internal_addresses(item):
            by_address.setdefault(address, name)
    nodes, problems = [], []
    for name, item in sorted(by_name.items()):
        meta = item["metadata"]
        entry = inventory.nodes.get(name)
        try:
            url = join_url(meta.get("annotations") or {})
        except ValueError as exc:
            problems.append(f"node {name}: {exc}; its join server is "
                            f"unknown")
            url = None
        host = urlparse(url).hostname if url else None
        join = by_address.get(host) or (host if host in by_name else None)
        addresses = internal_addresses(item) or (
            [entry.address] if entry and entry.address else [])
        nodes.append(Node(
            name=name, role=role_of(meta.get("labels") or {}),
            address=addresses[0] if addresses else "",
            join_server=join or (entry.join_server if entry else None),
            access=entry.access if entry else None,
            addresses=tuple(addresses)))
    for problem in problems:
        logger.warning("chaosk3s topology: %s", problem)
    missing = sorted(set(inventory.nodes) - set(by_name))
    if missing:
        raise SpecError(
            f"inventory {inventory.source} lists node(s) the API does not "
            f"know: {', '.join(missing)}; fix the names or remove them")
    return Topology(tuple(nodes), tuple(problems))
