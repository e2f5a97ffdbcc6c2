"""Writing files that others read while they change."""

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, content: str) -> None:
    """Readers (a browser, the index, `chaosk3s cleanup`, a person tailing
    a journal) see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
