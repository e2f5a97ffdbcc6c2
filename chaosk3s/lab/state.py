"""Where a lab keeps its state, so any process can manage it.

``<state>/lab.json`` is written *before* anything is created, so ``lab
down`` can undo a half-made lab too. Override the location with the
``CHAOSK3S_STATE_DIR`` environment variable.
"""

import dataclasses
import json
import os
from pathlib import Path

from chaosk3s.lab.spec import LabSpec, parse_spec

DEFAULT_STATE_DIR = "/var/lib/chaosk3s"


def state_dir() -> Path:
    return Path(os.environ.get("CHAOSK3S_STATE_DIR", DEFAULT_STATE_DIR))


class LabState:
    """Paths and the saved spec of one lab."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else state_dir()

    @property
    def record(self) -> Path:
        return self.root / "lab.json"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.yaml"

    def node_dir(self, node: str) -> Path:
        return self.root / "nodes" / node

    def log(self, node: str, service: str) -> Path:
        return self.node_dir(node) / "logs" / f"{service}.log"

    def pidfile(self, node: str, service: str) -> Path:
        return self.node_dir(node) / "run" / f"{service}.pid"

    def boot_id(self, node: str) -> Path:
        return self.node_dir(node) / "boot_id"

    def node_root(self, node: str) -> Path:
        """The node's emulated filesystem root (var/lib/rancher/k3s/...)."""
        return self.node_dir(node) / "root"

    def exists(self) -> bool:
        return self.record.exists()

    def save(self, spec: LabSpec, phase: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.record.with_suffix(".tmp")
        tmp.write_text(json.dumps(
            {"phase": phase, "spec": spec_to_dict(spec)}, indent=2))
        tmp.replace(self.record)

    def load(self) -> tuple[LabSpec, str]:
        """The saved spec and phase ('creating' or 'up')."""
        data = json.loads(self.record.read_text())
        return parse_spec(data["spec"], source=str(self.record)), \
            data["phase"]


def spec_to_dict(spec: LabSpec) -> dict:
    """The spec in the YAML/JSON form parse_spec reads."""
    return {
        "subnet": spec.subnet,
        "k3s_version": spec.release.version,
        "timings": dataclasses.asdict(spec.timings),
        "virtual_nodes": spec.virtual_nodes,
        "ssh": "sudo" if spec.ssh_sudo else spec.ssh,
        **({"subnet6": spec.subnet6} if spec.subnet6 else {}),
        "nodes": [{"name": n.name, "role": n.role, "address": n.address,
                   **({"server": n.server} if n.server else {})}
                  for n in spec.nodes],
    }
