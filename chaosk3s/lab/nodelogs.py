"""A lab node's log lines in a time window: what `journalctl -u k3s
--since --until` prints on a real node.

A lab node's services write to `<state>/nodes/<node>/logs/<service>.log`
(chaosk3s.lab.procs). Each line is placed in time by the stamp it
starts with: the node's k3s lines carry a dated UTC stamp
(`2026-11-29T15:39:06.789Z`, chaosk3s.lab.k3s), etcd's JSON lines a
`"ts"`, the service start marks `--- <stamp>`, grpc's warnings
`WARNING: 2026/11/29 15:39:31` (local time); a line without one (a
traceback, a restart loop's message) belongs with the line before it.
Like K3s, which embeds etcd, a node's k3s and etcd lines are one log.

Output lines are `<ISO 8601 UTC time> <node> <service>: <line as
written>`, oldest first, as journalctl's short-iso-precise output is
`<time> <host> <unit>[<pid>]: <message>`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

SERVICES = ("k3s", "etcd")  # what `journalctl -u k3s` covers on a node
MAX_LINES = 5000  # per call: a window of a busy log is cut, not read whole
_ISO = re.compile(r"(?:--- )?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z?)")
_GRPC = re.compile(r"[A-Z]+: (\d{4}/\d\d/\d\d \d\d:\d\d:\d\d)")


def line_time(line: str) -> datetime | None:
    """When the line was written, from its own stamp; None: no stamp."""
    found = _ISO.match(line)
    if found:
        return _utc(datetime.fromisoformat(found.group(1).replace(
            "Z", "+00:00")))
    if line.startswith("{"):
        try:
            stamp = json.loads(line).get("ts")
            return _utc(datetime.fromisoformat(stamp.replace("Z", "+00:00")))
        except (ValueError, AttributeError, TypeError):
            return None
    found = _GRPC.match(line)
    if found:  # grpc's logger writes local time
        return datetime.strptime(found.group(1), "%Y/%m/%d %H:%M:%S"
                                 ).astimezone(UTC)
    return None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None \
        else moment.astimezone(UTC)


def _timed(path: Path) -> Iterator[tuple[datetime | None, str]]:
    """(time, line) for each line of a log file; an unstamped line takes
    the time of the stamped line before it."""
    last: datetime | None = None
    with open(path, encoding="utf-8", errors="replace") as lines:
        for raw in lines:
            line = raw.rstrip("\n")
            last = line_time(line) or last
            yield last, line


def window(log_dir: Path, node: str, since: datetime, until: datetime
           ) -> list[str]:
    """The node's lines written in [since, until], oldest first (at most
    MAX_LINES, the earliest), in the module doc's output form."""
    found: list[tuple[datetime, int, str]] = []
    for order, service in enumerate(SERVICES):
        path = log_dir / f"{service}.log"
        if not path.exists():
            continue
        for moment, line in _timed(path):
            if moment is not None and since <= moment <= until:
                found.append((moment, order, f"{moment.isoformat()} {node} "
                              f"{service}: {line}"))
    found.sort(key=lambda item: (item[0], item[1]))
    return [text for _, _, text in found[:MAX_LINES]]


def since_epoch(value: str) -> datetime:
    """A --since/--until value: seconds since the epoch, as journalctl's
    `@SECONDS` (the leading @ is optional)."""
    return datetime.fromtimestamp(float(value.lstrip("@")), UTC)
