"""Upgrade one lab node's K3s in place, as an operator does on a node.

`chaosk3s lab node NAME upgrade --k3s-version V` (and the lab inventory's
`upgrade` command) stops the node's K3s (with its embedded etcd member,
as `systemctl stop k3s` does), records the node's new release in the
lab's state, and starts it again: the new process follows that release's
behaviour family (chaosk3s.lab.releases) and its kubelet reports the new
kubeletVersion in the Node's status. The node keeps its disk (the load
balancer's state file, its etcd data), as a real upgrade does.

Refused, with nothing changed: a version the release table does not
model, a downgrade and a jump over a minor release
(chaosk3s.k3s_versions.upgrade_problem). The same version is no
upgrade: nothing is done, and it says so.
"""

from contextlib import AbstractContextManager
from dataclasses import replace

from chaosk3s.errors import SpecError
from chaosk3s.files import exclusive_lock
from chaosk3s.k3s_versions import upgrade_problem
from chaosk3s.lab.cluster import Lab
from chaosk3s.lab.releases import Release, parse_release


def target_release(current: Release, version: str) -> Release:
    """The release to upgrade to, or SpecError (one line) naming it."""
    try:
        target = parse_release(version)
    except ValueError as exc:
        raise SpecError(f"upgrade refused, nothing changed: {exc}") from None
    problem = upgrade_problem(current.version, target.version)
    if problem:
        raise SpecError(f"upgrade refused, nothing changed: {problem}")
    return target


def upgrade_node(lab: Lab, name: str, version: str,
                 timeout: float = 15) -> str:
    """Upgrade node name of lab to version; what to tell the user."""
    spec = lab.spec()
    node = spec.node(name)
    current = spec.release_of(node)
    target = target_release(current, version)
    if target.version == current.version:
        return (f"{name} already runs {current.version}; nothing to "
                f"upgrade, nothing changed")
    lab.stop_node(name)
    with _spec_lock(lab):  # other nodes may be upgraded at the same time
        spec = lab.spec()
        nodes = tuple(replace(n, k3s_version=target.version)
                      if n.name == name else n for n in spec.nodes)
        lab.state.save(replace(spec, nodes=nodes), phase="up")
    lab.start_node(name, timeout=timeout)
    return (f"{name}: {current.version} ({current.family}) -> "
            f"{target.version} ({target.family}); k3s started again")


def node_version(lab: Lab, name: str) -> str:
    """What `k3s --version` would say of the node's release, and its
    family in the lab."""
    spec = lab.spec()
    release = spec.release_of(spec.node(name))
    return f"k3s version {release.version} ({release.family})"


def _spec_lock(lab: Lab) -> AbstractContextManager[None]:
    # under nodes/, which `lab down` removes with the rest
    return exclusive_lock(lab.state.node_dir(".spec.lock"))
