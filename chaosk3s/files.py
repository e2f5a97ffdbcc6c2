"""Writing files that others read while they change, and that must
survive a crash or a power cut the moment after they are written.

Every artefact chaosk3s writes (journals and partial journals, ledgers,
reports, the index, game-day summaries) goes through write_atomically:
readable and writable by its owner only (0600), whatever the umask, as
each may name the cluster's nodes and what was done to them. Share a
report by copying it, or by serving the directory as its owner.
"""

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

OWNER_ONLY = 0o600


def write_atomically(path: Path, content: str, durable: bool = True) -> None:
    """Readers (a browser, the index, `chaosk3s cleanup`, a person tailing
    a journal) see the old file or the new one, never half of one; the
    file is 0600 (mkstemp creates it so, before any byte is written).
    With durable (the default), the content and the rename are on disk
    when this returns (fsync of the file, then of its directory): a
    ledger entry recorded before a fault must outlive a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, OWNER_ONLY)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        sync_directory(path.parent)


def sync_directory(directory: Path) -> None:
    """fsync a directory, so a rename or a new file in it is durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def owner_only(path: Path) -> None:
    """Create path if it is missing (never truncating it) and make it
    0600: for files another program writes next with open(path, "w") or
    appends to (Chaos Toolkit's journal and log file), which keep the
    mode of an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, OWNER_ONLY))
    os.chmod(path, OWNER_ONLY)


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """An flock on path (created if need be) held for the block: one
    process at a time, across processes, released if the holder dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
