"""K3s releases the lab can emulate, the behaviour family of each, and the
record that places it (docs/k3s-behaviour.md, "Releases").

- ``buggy``: the agent load balancer before PR #11319 (K3s #11311).
- ``fix1``: PR #11319, "failover to default server" (#11320-#11323).
- ``rework``: PR #11329, the load-balancer state machine (#11349).

Independently, ``bootstrap_fix`` ("C7") tells whether a control-plane-only
server can start while its join server is unreachable (#11333, PR #11844).

The lab models one load-balancer code base per family. The pre-fix one it
models is the code after health checks (#9757), the health-ignoring second
dial pass (#10241) and the deadlock and default-server fix (#10511);
releases older than that ran different code and are refused.
"""

import re
from dataclasses import dataclass

BUGGY, FIX1, REWORK = "buggy", "fix1", "rework"


@dataclass(frozen=True)
class Minor:
    """Where each family starts in one minor line; None = never released."""

    first: int  # first patch with the modelled load-balancer code
    last: int  # last patch the lab knows
    fix1: int | None
    rework: int | None
    bootstrap: int | None  # first patch with the #11333 fix
    sources: dict[str, str]  # what places each start: first/fix1/rework/c7

    def source(self, patch: int) -> str:
        """The record that places the last change at or before patch."""
        starts = [(self.first, "first"), (self.fix1, "fix1"),
                  (self.rework, "rework"), (self.bootstrap, "c7")]
        found = [(start, key) for start, key in starts
                 if start is not None and start <= patch
                 and key in self.sources]
        key = max(found)[1] if found else "first"
        return self.sources.get(key) or self.sources["first"]


_MINORS: dict[int, Minor] = {
    28: Minor(12, 15, None, None, None, {
        "first": "#10511 shipped in v1.28.12; v1.28.15+k3s1 (2024-10-26) "
                 "is the last 1.28 release; #11323 open: backport PR "
                 "#11327 merged, never released"}),
    29: Minor(7, 15, 11, 12, 15, {
        "first": "#10515: #10511 validated on v1.29.7-rc1",
        "fix1": "#11322: PR #11326 validated on release-1.29 (2024-11-29)",
        "rework": "#11426: PR #11459 validated on v1.29.12-rc1",
        "c7": "#11941: PR #11844 backport"}),
    30: Minor(3, 14, 7, 8, 11, {
        "first": "#10524: #10511 validated on v1.30.3-rc1",
        "fix1": "#11321: PR #11325 validated on release-1.30 (2024-11-29)",
        "rework": "#11425: PR #11458", "c7": "#11915: PR #11844 backport"}),
    31: Minor(0, 14, 3, 4, 7, {
        "first": "v1.31.0 followed #10511 (merged 2024-07)",
        "fix1": "#11320: PR #11324", "rework": "#11424: PR #11457",
        "c7": "#11914: PR #11844 backport"}),
    32: Minor(0, 13, 0, 0, 3, {"first": "v1.32.0 followed the rework",
                               "c7": "#11913: PR #11844 backport"}),
    33: Minor(0, 9, 0, 0, 0, {"first": "v1.33.0 followed PR #11844"}),
}
# Commit builds of release branches that the record names, with their
# family and bootstrap fix; no tagged release carries these.
_BUILDS: dict[str, tuple[str, bool, str]] = {
    "v1.28.15+k3s-2d0661e3": (
        FIX1, False, "write-up of the #11311 fix (2025-05-06): the "
        "validated fixed build of release-1.28 (PR #11327)"),
    "v1.29.14+k3s-288efc52": (
        REWORK, True, "#11941: #11333 fix validated on this build"),
    "v1.30.10+k3s-3c8c398a": (
        REWORK, True, "#11915: #11333 fix validated on this build"),
    "v1.32.2+k3s-dfffdfa2": (
        REWORK, True, "#11913: #11333 fix validated on this build"),
}
_TAG = re.compile(r"^v1\.(\d+)\.(\d+)\+k3s(\d+)$")
_BUILD = re.compile(r"^v1\.(\d+)\.(\d+)\+k3s-([0-9a-f]{7,40})$")


@dataclass(frozen=True)
class Release:
    version: str
    minor: int
    patch: int
    family: str
    bootstrap_fix: bool
    source: str = ""
    commit: str | None = None  # a branch build, not a tagged release


def _family(minor: Minor, patch: int) -> str:
    if minor.rework is not None and patch >= minor.rework:
        return REWORK
    if minor.fix1 is not None and patch >= minor.fix1:
        return FIX1
    return BUGGY


def modelled_range() -> str:
    """The accepted versions, for error messages."""
    ranges = [f"v1.{n}.{m.first}-v1.{n}.{m.last}+k3sN"
              for n, m in sorted(_MINORS.items())]
    return (", ".join(ranges) + "; commit builds "
            + ", ".join(sorted(_BUILDS)))


def parse_release(version: str) -> Release:
    """Parse ``v1.28.15+k3s1`` (or a known commit build such as
    ``v1.28.15+k3s-2d0661e3``) into a Release, or raise ValueError."""
    text = str(version).strip()
    if text in _BUILDS:
        family, bootstrap, source = _BUILDS[text]
        match = _BUILD.match(text)
        return Release(text, int(match.group(1)), int(match.group(2)),
                       family, bootstrap, source, match.group(3))
    if _BUILD.match(text):
        raise ValueError(
            f"K3s commit build {text!r} is not in the lab's release table, "
            f"so its load-balancer code is unknown; known builds: "
            f"{', '.join(sorted(_BUILDS))} (`chaosk3s lab releases` lists "
            f"every modelled release)")
    match = _TAG.match(text)
    minor = _MINORS.get(int(match.group(1))) if match else None
    if not match or minor is None or int(match.group(2)) > minor.last:
        raise ValueError(
            f"unknown K3s release {text!r}: the lab emulates "
            f"{modelled_range()} (for example v1.28.15+k3s1 for the #11311 "
            f"bug, v1.28.15+k3s-2d0661e3 for its fix)")
    patch = int(match.group(2))
    if patch < minor.first:
        raise ValueError(
            f"K3s {text} is older than the load-balancer code the lab "
            f"models (health checks, the second dial pass and the "
            f"default-server handling of PRs #9757, #10241 and #10511, "
            f"from v1.{match.group(1)}.{minor.first}); its load balancer "
            f"behaved differently. The lab emulates {modelled_range()}")
    return Release(text, int(match.group(1)), patch, _family(minor, patch),
                   minor.bootstrap is not None and patch >= minor.bootstrap,
                   minor.source(patch))


def release_table() -> list[dict]:
    """Every modelled release as rows: versions, family, C7, source."""
    rows = []
    for number, minor in sorted(_MINORS.items()):
        starts = sorted({minor.first, *(p for p in (
            minor.fix1, minor.rework, minor.bootstrap)
            if p is not None and minor.first < p <= minor.last)})
        for index, start in enumerate(starts):
            end = starts[index + 1] - 1 if index + 1 < len(starts) \
                else minor.last
            release = parse_release(f"v1.{number}.{start}+k3s1")
            versions = f"v1.{number}.{start}" + (
                f"-v1.{number}.{end}" if end > start else "")
            rows.append({"versions": versions, "family": release.family,
                         "bootstrap_fix": release.bootstrap_fix,
                         "source": minor.source(start)})
        rows += [{"versions": version, "family": family,
                  "bootstrap_fix": bootstrap, "source": source}
                 for version, (family, bootstrap, source)
                 in sorted(_BUILDS.items())
                 if version.startswith(f"v1.{number}.")]
    return rows
