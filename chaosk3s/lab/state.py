"""Where a lab keeps its state, so any process can manage it.

``<state>/lab.json`` is written *before* anything is created, so ``lab
down`` can undo a half-made lab too. The base directory is
``/var/lib/chaosk3s`` or ``$CHAOSK3S_STATE_DIR``; the default lab's state
is the base itself (as it always was), lab N's is ``<base>/labs/N``. The
lab name is ``$CHAOSK3S_LAB_NAME`` unless given (chaosk3s.namedlabs).
"""

import dataclasses
import json
import os
from pathlib import Path

from chaosk3s.errors import SpecError
from chaosk3s.lab.spec import LabSpec, parse_spec
from chaosk3s.namedlabs import (
    DEFAULT,
    LabNames,
    check_lab_name,
    lab_name_from_env,
)

DEFAULT_STATE_DIR = "/var/lib/chaosk3s"
NAMED_DIR = "labs"  # <base>/labs/<name>: the named labs' state


def base_dir() -> Path:
    return Path(os.environ.get("CHAOSK3S_STATE_DIR") or DEFAULT_STATE_DIR)


def state_dir(name: str = DEFAULT, base: Path | None = None) -> Path:
    """Lab name's state directory under base (default: base_dir())."""
    base = Path(base) if base is not None else base_dir()
    return base if check_lab_name(name) == DEFAULT else \
        base / NAMED_DIR / name


def recorded_labs() -> dict[str, Path]:
    """Lab name -> state dir, for every lab recorded under the base
    directory (up or half-made)."""
    found = {}
    if (base_dir() / "lab.json").exists():
        found[DEFAULT] = base_dir()
    for record in sorted((base_dir() / NAMED_DIR).glob("*/lab.json")):
        try:
            found[check_lab_name(record.parent.name)] = record.parent
        except SpecError:  # not a lab name: not a lab's
            continue
    return found


class LabState:
    """Paths and the saved spec of one lab."""

    def __init__(self, root: Path | None = None, name: str | None = None):
        self.name = check_lab_name(name) if name is not None else \
            lab_name_from_env()
        self.names = LabNames(self.name)
        self.root = Path(root) if root else state_dir(self.name)

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
                   **({"server": n.server} if n.server else {}),
                   **({"k3s_version": n.k3s_version} if n.k3s_version
                      else {})}
                  for n in spec.nodes],
    }
