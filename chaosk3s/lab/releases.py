"""K3s releases the lab can emulate, and the behaviour family of each.

The families follow ../shared/k3s-behaviour.md section 7:

- ``buggy``: the agent load balancer before PR #11319 (B1-B8).
- ``fix1``: PR #11319, "failover to default server" (F1-F8).
- ``rework``: PR #11329, the load balancer state machine (R1-R6).

Independently, ``bootstrap_fix`` tells whether a control-plane-only server
can start while its join server is unreachable (#11333, PR #11844).
"""

import re
from dataclasses import dataclass

BUGGY, FIX1, REWORK = "buggy", "fix1", "rework"

# minor -> (last patch known, first fix1 patch, first rework patch,
#           first patch with the #11333 bootstrap fix); None = never.
_MINORS: dict[int, tuple[int, int, int | None, int | None]] = {
    28: (15, 15, None, None),
    29: (15, 11, 12, 15),
    30: (14, 7, 8, 11),
    31: (14, 3, 4, 7),
    32: (13, 0, 0, 3),
    33: (9, 0, 0, 0),
}
_VERSION = re.compile(r"^v1\.(\d+)\.(\d+)\+k3s(\d+)$")


@dataclass(frozen=True)
class Release:
    version: str
    minor: int
    patch: int
    family: str
    bootstrap_fix: bool


def known_releases() -> str:
    """The accepted range of versions, for error messages."""
    return ", ".join(f"v1.{minor}.0-v1.{minor}.{last}+k3sN"
                     for minor, (last, *_rest) in sorted(_MINORS.items()))


def parse_release(version: str) -> Release:
    """Parse ``v1.28.15+k3s1`` into a Release, or raise ValueError."""
    match = _VERSION.match(version.strip())
    known = _MINORS.get(int(match.group(1))) if match else None
    if not match or known is None or int(match.group(2)) > known[0]:
        raise ValueError(
            f"unknown K3s release {version!r}: the lab emulates "
            f"{known_releases()} (for example v1.28.14+k3s1 for the "
            f"#11311 bug, v1.28.15+k3s1 for its fix)")
    minor, patch = int(match.group(1)), int(match.group(2))
    _last, fix1, rework, bootstrap = known
    if rework is not None and patch >= rework:
        family = REWORK
    elif patch >= fix1:
        family = FIX1
    else:
        family = BUGGY
    return Release(version=version.strip(), minor=minor, patch=patch,
                   family=family,
                   bootstrap_fix=bootstrap is not None and patch >= bootstrap)
