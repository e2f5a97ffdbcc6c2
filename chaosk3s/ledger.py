"""What one run injected, on disk, so it can be healed whatever happens.

Entries are written *before* a fault is applied and marked healed after,
so a run killed between the two still tells `chaosk3s cleanup` and the
control's cleanup hook where to look. (The nodes' own expiry timers are
the last line of defence; this is the first.)
"""

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chaosk3s.files import write_atomically


def ledger_dir() -> Path:
    default = "/var/lib/chaosk3s/ledger" if os.geteuid() == 0 else \
        os.path.expanduser("~/.local/state/chaosk3s/ledger")
    return Path(os.environ.get("CHAOSK3S_LEDGER_DIR", default))


def new_run_id() -> str:
    """Short, sortable and safe in iptables chain names and file names."""
    return time.strftime("%m%d%H%M") + secrets.token_hex(2)


@dataclass
class Ledger:
    run_id: str
    target: str
    # Called after every write: the control mirrors the ledger into the
    # journal-so-far, so a run killed mid-apply still shows the fault.
    on_change: Callable[[], None] | None = None

    @property
    def path(self) -> Path:
        return ledger_dir() / f"{self.run_id}.json"

    def entries(self) -> list[dict]:
        try:
            return json.loads(self.path.read_text())["faults"]
        except (OSError, ValueError, KeyError):
            return []

    def _write(self, faults: list[dict]) -> None:
        write_atomically(self.path, json.dumps(
            {"run_id": self.run_id, "target": self.target,
             "faults": faults}, indent=2))
        if self.on_change is not None:
            self.on_change()

    def next_fault_id(self) -> str:
        return f"{self.run_id}{len(self.entries()) + 1}"

    def record(self, entry: dict) -> None:
        self._write([*self.entries(), entry])

    def update(self, fault_id: str, **fields: object) -> None:
        self._write([{**e, **fields} if e["id"] == fault_id else e
                     for e in self.entries()])

    def open_faults(self) -> list[dict]:
        return [e for e in self.entries() if not e.get("ended_at")]


def open_ledgers(target: str) -> list[Ledger]:
    """Ledgers of any run against target that still have open faults."""
    found = []
    for path in sorted(ledger_dir().glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        ledger = Ledger(data.get("run_id", path.stem), data.get("target", ""))
        if ledger.target == target and ledger.open_faults():
            found.append(ledger)
    return found
