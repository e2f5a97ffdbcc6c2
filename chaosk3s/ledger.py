"""What one run injected, on disk, so it can be healed whatever happens.

Entries are written *before* a fault is applied and closed after a heal
was read back from the nodes, so a run killed between the two still
tells `chaosk3s cleanup` and the control's cleanup hook where to look.
(The nodes' own expiry timers are the last line of defence; this is the
first.)

Safe to share: every read-modify-write holds an exclusive lock (a
`flock` on ``<run id>.lock`` beside the ledger, which also orders the
threads of one process, as each transaction opens its own descriptor),
so Chaos Toolkit's background activities and a `chaosk3s cleanup` in
another process never lose each other's writes, and fault ids, taken
inside that lock, are unique. Writes are atomic and fsynced. A ledger
that cannot be parsed is never read as empty (the next write would
erase what it knew): it is moved aside and LedgerUnreadable names both
paths.
"""

import fcntl
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from chaosk3s.errors import INTERRUPTIONS, ChaosK3sError, LedgerUnreadable
from chaosk3s.files import write_atomically

UNREADABLE = ".unreadable-"  # infix of a ledger moved aside
logger = logging.getLogger("chaostoolkit")


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
    _local: threading.RLock = field(default_factory=threading.RLock,
                                    repr=False, compare=False)
    _depth: int = field(default=0, repr=False, compare=False)

    @property
    def path(self) -> Path:
        return ledger_dir() / f"{self.run_id}.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The ledger's lock: the thread lock, then the file lock (held
        once per thread; a nested transaction reuses it)."""
        with self._local:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path.with_suffix(".lock"), "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self) -> list[dict]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            aside = sorted(self.path.parent.glob(
                f"{self.run_id}{UNREADABLE}*.json"))
            if aside:  # starting afresh would reuse its fault ids
                raise LedgerUnreadable(self.path, aside[-1],
                                       "set aside earlier") from None
            return []
        except OSError as exc:
            raise LedgerUnreadable(self.path, None, exc.strerror) from None
        try:
            faults = json.loads(text)["faults"]
            if not isinstance(faults, list) or not all(
                    isinstance(f, dict) and "id" in f for f in faults):
                raise ValueError("faults is not a list of entries")
        except (ValueError, KeyError, TypeError) as exc:
            raise LedgerUnreadable(self.path, set_aside(self.path),
                                   f"{type(exc).__name__}: {exc}") from None
        return faults

    def _write(self, faults: list[dict]) -> None:
        write_atomically(self.path, json.dumps(
            {"run_id": self.run_id, "target": self.target,
             "faults": faults}, indent=2))
        if self.on_change is not None:
            try:
                self.on_change()
            except INTERRUPTIONS:  # a signal's (SIGTERM): it ends the
                raise  # activity; the entry is on disk already
            except Exception as exc:  # noqa: BLE001 - a mirror, not the
                # record: the ledger on disk is what counts
                logger.warning("chaosk3s: ledger %s: %s", self.path, exc)

    def entries(self) -> list[dict]:
        with self._locked():
            return self._read()

    def add(self, entry: dict,
            check: Callable[[list[dict]], None] | None = None) -> str:
        """Record a new fault under a fresh id and return the id. check,
        if given, sees every entry first inside the same lock and may
        raise to refuse (nothing is then recorded)."""
        with self._locked():
            faults = self._read()
            if check is not None:
                check(faults)
            fault_id = f"{self.run_id}{len(faults) + 1}"
            self._write([*faults, {"id": fault_id, **entry}])
            return fault_id

    def update(self, fault_id: str,
               change: Callable[[dict], dict] | None = None,
               **fields: object) -> dict:
        """Set fields of one entry (or replace it by change(entry));
        returns the entry as written."""
        with self._locked():
            faults, written = self._read(), {}
            for index, entry in enumerate(faults):
                if entry["id"] == fault_id:
                    written = {**(change(entry) if change else entry),
                               **fields}
                    faults[index] = written
            if not written:
                raise ChaosK3sError(f"ledger {self.path} has no fault "
                                    f"{fault_id}")
            self._write(faults)
            return written

    def open_faults(self) -> list[dict]:
        return [e for e in self.entries() if not e.get("ended_at")]


def set_aside(path: Path) -> Path | None:
    """Move an unreadable ledger out of the way, keeping it for people."""
    aside = path.with_name(f"{path.stem}{UNREADABLE}"
                           f"{time.strftime('%Y%m%dT%H%M%S')}.json")
    try:
        path.rename(aside)
    except OSError:
        return None
    return aside


def open_ledgers(target: str) -> tuple[list[Ledger], list[str]]:
    """Ledgers of any run against target that still have open faults,
    and a line per ledger found unreadable now (then moved aside; ones
    set aside before are the logs' and a person's to read)."""
    found, problems = [], []
    for path in sorted(ledger_dir().glob("*.json")):
        if UNREADABLE in path.name:
            continue
        try:
            data = json.loads(path.read_text())
            ledger = Ledger(str(data["run_id"]), str(data.get("target")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = set_aside(path)
            problems.append(str(LedgerUnreadable(path, aside, str(exc))))
            continue
        try:
            if ledger.target == target and ledger.open_faults():
                found.append(ledger)
        except LedgerUnreadable as exc:
            problems.append(str(exc))
    return found, problems
