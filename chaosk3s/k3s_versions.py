"""K3s version strings as the extension reads them on any cluster.

A K3s release is tagged ``v1.MINOR.PATCH+k3sN``; a build of a release
branch is ``v1.MINOR.PATCH+k3s-COMMIT``. The kubelet of a K3s node
reports that string as the Node's ``status.nodeInfo.kubeletVersion``.
The lab models a subset of them (chaosk3s.lab.releases); this module
only parses and orders, for clusters the lab's table does not know.
"""

import re

VERSION = re.compile(r"^v1\.(\d{1,3})\.(\d{1,3})\+k3s(?:(\d{1,3})|"
                     r"-([0-9a-f]{7,40}))$")
FORM = "v1.MINOR.PATCH+k3sN (e.g. v1.31.4+k3s1) or v1.MINOR.PATCH+k3s-COMMIT"
_AFTER_EVERY_TAG = 1_000_000


def version_order(version: str) -> tuple[int, int, int]:
    """(minor, patch, rank) to compare releases by; ValueError if the
    string is no K3s version. A commit build of a release branch ranks
    after every tag of its patch: the builds chaosk3s knows of were made
    after their patch's last tag (chaosk3s.lab.releases)."""
    match = VERSION.fullmatch(str(version))
    if match is None:
        raise ValueError(f"{version!r} is not a K3s version: expected "
                         f"{FORM}")
    minor, patch, tag = match.group(1), match.group(2), match.group(3)
    return int(minor), int(patch), int(tag) if tag else _AFTER_EVERY_TAG


def is_k3s_version(version: str) -> bool:
    try:
        version_order(version)
    except ValueError:
        return False
    return True


def upgrade_problem(current: str, target: str) -> str | None:
    """Why going from current to target is no supported K3s upgrade, or
    None: a downgrade (K3s does not support one; k3s-io/k3s #7537 made
    its upgrade job refuse it), or a jump over a minor release (the
    Kubernetes version skew policy, which docs.k3s.io/upgrades/automated
    tells K3s users to keep: no intermediate minor skipped)."""
    now, then = version_order(current), version_order(target)
    if then < now:
        return (f"{target} is older than {current}; K3s does not support "
                f"downgrades (k3s-io/k3s #7537)")
    if then[0] > now[0] + 1:
        return (f"{target} skips a minor release after {current}; "
                f"upgrade one minor at a time (Kubernetes version skew "
                f"policy, docs.k3s.io/upgrades/automated)")
    return None
