"""Every lab on this machine, by name: for `chaosk3s lab list` and
`chaosk3s lab down --all`.

Two sources, both shown: the labs recorded in the state directory (up, or
half-made) and the namespaces and host links on the machine, grouped by
the lab name their own names carry (chaosk3s.namedlabs.owner). A lab
that has namespaces or links but no record here was made with another
state directory, or was left behind by a crash.
"""

from chaosk3s.errors import SpecError
from chaosk3s.lab import hostnet
from chaosk3s.lab.cluster import Lab, Progress, _quiet
from chaosk3s.lab.state import LabState, recorded_labs

UNRECORDED = "unrecorded"  # namespaces or links, no record here


def list_labs() -> list[dict]:
    """One JSON-ready row per lab, by name."""
    recorded = recorded_labs()
    machine = hostnet.labs_on_machine()
    empty = {"namespaces": [], "links": []}
    return [_row(LabState(recorded.get(name), name), machine.get(name, empty))
            for name in sorted(set(recorded) | set(machine))]


def _row(state: LabState, found: dict[str, list[str]]) -> dict:
    row = {"name": state.name, "phase": UNRECORDED, "state": str(state.root),
           "release": None, "family": None, "subnet": None, "nodes": None,
           "bridge": state.names.bridge, **found}
    if state.exists():
        try:
            spec, row["phase"] = state.load()
        except (SpecError, ValueError, KeyError, OSError) as exc:
            row["phase"] = f"unreadable record ({exc})"
            return row
        row.update(release=spec.release.version, family=spec.release.family,
                   subnet=spec.subnet, nodes=len(spec.nodes))
    return row


def down_all(progress: Progress = _quiet) -> dict[str, list[str]]:
    """Take every lab down; lab name -> what was removed."""
    return {row["name"]: Lab(LabState(row["state"], row["name"])).down(
        progress) for row in list_labs()}
