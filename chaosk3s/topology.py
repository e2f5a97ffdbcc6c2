"""What the cluster is, read from the Kubernetes API and the inventory.

Roles come from the node-role labels K3s sets, the join server from the
``k3s.io/node-args`` annotation (``--server``) or ``K3S_URL`` in
``k3s.io/node-env``; the inventory adds how to reach each node.
"""

import json
from urllib.parse import urlparse

from chaosk3s.errors import SpecError
from chaosk3s.inventory import Inventory
from chaosk3s.model import Node, Topology
from chaosk3s.names import node_name

ROLE_LABEL = "node-role.kubernetes.io/"


def role_of(labels: dict[str, str]) -> str:
    control = f"{ROLE_LABEL}control-plane" in labels or \
        f"{ROLE_LABEL}master" in labels
    etcd = f"{ROLE_LABEL}etcd" in labels
    if control and etcd:
        return "server"
    if control:
        return "control-plane"
    return "etcd" if etcd else "agent"


def join_url(annotations: dict[str, str]) -> str | None:
    """The --server a node was started with, as K3s records it."""
    try:
        args = json.loads(annotations.get("k3s.io/node-args", "[]"))
    except ValueError:
        args = []
    for flag in ("--server", "-s"):
        if flag in args[:-1]:
            return args[args.index(flag) + 1]
    try:
        env = json.loads(annotations.get("k3s.io/node-env", "{}"))
    except ValueError:
        env = {}
    return env.get("K3S_URL") or None


def internal_address(node: dict) -> str | None:
    for address in node.get("status", {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return address.get("address")
    annotations = node["metadata"].get("annotations") or {}
    return annotations.get("k3s.io/internal-ip", "").split(",")[0] or None


def build_topology(api_nodes: list[dict], inventory: Inventory) -> Topology:
    """Join API facts with the inventory; the API wins on roles."""
    by_address, by_name = {}, {}
    for item in api_nodes:
        # A name reaches command lines ({node} in inventory commands).
        name = node_name(item["metadata"]["name"], "the API lists a node")
        by_name[name] = item
        address = internal_address(item)
        if address:
            by_address[address] = name
    nodes = []
    for name, item in sorted(by_name.items()):
        meta = item["metadata"]
        entry = inventory.nodes.get(name)
        url = join_url(meta.get("annotations") or {})
        host = urlparse(url).hostname if url else None
        join = by_address.get(host) or (host if host in by_name else None)
        nodes.append(Node(
            name=name, role=role_of(meta.get("labels") or {}),
            address=internal_address(item) or (entry.address if entry
                                                else ""),
            join_server=join or (entry.join_server if entry else None),
            access=entry.access if entry else None))
    missing = sorted(set(inventory.nodes) - set(by_name))
    if missing:
        raise SpecError(
            f"inventory {inventory.source} lists node(s) the API does not "
            f"know: {', '.join(missing)}; fix the names or remove them")
    return Topology(tuple(nodes))
