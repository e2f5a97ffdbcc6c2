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
downgrade of any selected node or a jump over a minor release
(chaosk3s.k3s_versions.upgrade_problem), and an inventory without an
`upgrade` command. A
node already at the version is skipped, and the result says so: running
the roll again after a failure goes on where it stopped.
"""

import shlex
import time

from chaosk3s.errors import ChaosK3sError, SpecError
from chaosk3s.k3s_versions import upgrade_problem
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
    problems = [f"{n.name}: {problem}" for n in nodes
                if (problem := _problem(versions.get(n.name), version))]
    if problems:
        raise SpecError(f"upgrade_k3s refused, nothing changed: "
                        f"{'; '.join(problems)}")
    for node in nodes:  # each node's own command, or the reason it has none
        target.inventory.command(node.role, "upgrade", node.name)


def _problem(current: str | None, version: str) -> str | None:
    """What is wrong with upgrading a node at current to version; a
    version the extension cannot read is no problem (the upgrade makes
    it known)."""
    try:
        return upgrade_problem(current or "", version)
    except ValueError:
        return None


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
