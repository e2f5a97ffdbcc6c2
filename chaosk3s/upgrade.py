"""A rolling K3s upgrade, one node at a time (the `upgrade_k3s` action).

What the action does around the FaultSession's node work (which records
the upgrade in the ledger before it runs, runs the inventory's `upgrade`
command and proves a new K3s process, then waits for the node to be
back): which version each node runs, what is refused before anything
runs, and the wait for the node to report the new version.

The version a node runs is the one its kubelet reports through the API
(`status.nodeInfo.kubeletVersion`, which a K3s node sets to its K3s
version, e.g. v1.31.4+k3s1): the same place `kubectl get nodes` shows it.

Refused before any node is touched: a version that is no K3s version, a
downgrade of any selected node (K3s does not support downgrades:
docs.k3s.io/upgrades), and an inventory without an `upgrade` command. A
node already at the version is skipped, and the result says so: running
the roll again after a failure goes on where it stopped.
"""

import shlex
import time

from chaosk3s.errors import ChaosK3sError, SpecError
from chaosk3s.k3s_versions import version_order
from chaosk3s.kube import ready_status
from chaosk3s.model import Node
from chaosk3s.target import Target

POLL = 1.0  # seconds between two reads of the node


def kubelet_versions(target: Target) -> dict[str, str]:
    """Node name -> the kubeletVersion the API has for it."""
    items = target.kube.list_nodes()["items"]
    return {item["metadata"]["name"]: (item.get("status", {}).get(
        "nodeInfo") or {}).get("kubeletVersion", "") for item in items}


def check_roll(nodes: list[Node], versions: dict[str, str], version: str,
               target: Target) -> None:
    """Refuse, before anything runs, what the roll could not finish."""
    wanted = version_order(version)
    newer = [f"{n.name} ({versions[n.name]})" for n in nodes
             if _order(versions.get(n.name)) > wanted]
    if newer:
        raise SpecError(
            f"upgrade_k3s refused, nothing changed: {version} would "
            f"downgrade {', '.join(newer)}; K3s does not support "
            f"downgrades (docs.k3s.io/upgrades)")
    for node in nodes:  # each node's own command, or the reason it has none
        target.inventory.command(node.role, "upgrade", node.name)


def _order(version: str | None) -> tuple[int, int, int]:
    """A version's order; one the extension cannot read counts as
    oldest (the upgrade makes it known)."""
    try:
        return version_order(version or "")
    except ValueError:
        return (-1, -1, -1)


def with_version(commands: dict[str, str], version: str) -> dict[str, str]:
    """The node's commands with {version} filled in (it was checked as
    a K3s version; quoted anyway, as everything reaching a shell)."""
    return {**commands, "upgrade": commands["upgrade"].replace(
        "{version}", shlex.quote(version))}


def wait_version(target: Target, node: str, version: str,
                 bound: float) -> dict:
    """Until the API shows node Ready at version (at least one read);
    ChaosK3sError naming the node and what was seen otherwise."""
    deadline = time.monotonic() + max(bound, 0.0)
    while True:
        seen = _read(target, node)
        if seen == (version, "True"):
            return {"kubelet_version": version, "ready": True}
        if time.monotonic() >= deadline:
            shown = seen if isinstance(seen, str) else (
                f"kubeletVersion {seen[0] or 'none'}, Ready={seen[1]}")
            raise ChaosK3sError(
                f"upgrade_k3s: node {node} did not rejoin at {version} in "
                f"time: {shown}; no further node was upgraded")
        time.sleep(POLL)


def _read(target: Target, node: str) -> tuple[str, str] | str:
    try:
        item = target.kube.call("read_node", timeout=5, name=node)
    except (ChaosK3sError, OSError) as exc:
        return f"the API did not answer ({exc})"
    info = item.get("status", {}).get("nodeInfo") or {}
    return info.get("kubeletVersion", ""), ready_status(item)[0]
