"""Each node's own log around its readiness transitions, for the
journal's `node_logs` and the report.

For every outage in the journal section, the lines the node logged
from BEFORE seconds before to AFTER seconds after it went NotReady, and
again around its Ready: read with the inventory's `logs` command for the
node's role (on a real node `journalctl -u k3s` or `-u k3s-agent` with
`--since=@SECONDS --until=@SECONDS`; the lab's reads its node's log
files, chaosk3s.lab.nodelogs) over the run's own transport, when the run
ends.

Best effort and bounded, so a slow or silent node cannot hold up or
bloat the journal: at most MAX_TRANSITIONS excerpts per node, each of at
most MAX_LINES lines (the ones nearest the transition) of at most
MAX_LINE_CHARS characters and MAX_EXCERPT_BYTES in all; NODE_SECONDS of
commands per node (nodes read in parallel), TOTAL_SECONDS for all, and
MAX_TOTAL_BYTES over every node (later excerpts are then left out,
saying so). A node that cannot be read (unreachable, no transport, a
command that fails) gets its `error`; nothing here raises. Every line is
redacted (chaosk3s.redact) before it is kept.

A node's lines carry its own clock: on a real cluster they sit where
they belong only as far as the nodes' clocks agree with the runner's.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from chaosk3s.model import Node
from chaosk3s.transports.base import Transport

logger = logging.getLogger("chaostoolkit")
BEFORE, AFTER = 20.0, 10.0  # seconds of log around a transition
MAX_TRANSITIONS = 6  # per node: its first three outages, down and up
MAX_LINES = 40
MAX_LINE_CHARS = 400
MAX_EXCERPT_BYTES = 12_000
MAX_TOTAL_BYTES = 200_000
NODE_SECONDS = 15.0
TOTAL_SECONDS = 45.0
WORKERS = 8
MAX_ERROR_CHARS = 300

Redact = Callable[[str], str]
CommandFor = Callable[[Node], str]  # the node's `logs` command template


def transitions(section: dict, name: str) -> list[tuple[str, datetime]]:
    """("NotReady" | "Ready", moment) of the node's outages, in time
    order, at most MAX_TRANSITIONS."""
    found = []
    for outage in (section.get("nodes", {}).get(name) or {}).get(
            "outages") or []:
        found.append(("NotReady", outage["not_ready_at"]))
        if outage.get("ready_at"):
            found.append(("Ready", outage["ready_at"]))
    return [(kind, datetime.fromisoformat(at))
            for kind, at in found[:MAX_TRANSITIONS]]


def command(template: str, since: datetime, until: datetime) -> str:
    """The logs command for the window: whole seconds (a line at the
    window's edge is kept rather than lost)."""
    return template.replace("{since}", str(math.floor(since.timestamp()))
                            ).replace("{until}",
                                      str(math.ceil(until.timestamp())))


def line_time(line: str) -> datetime | None:
    """The time a line starts with (journalctl's short-iso-precise and
    the lab's form), None when it starts with none."""
    stamp = line.split(" ", 1)[0]
    if len(stamp) < 19 or stamp[4:5] != "-":
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def nearest(lines: list[str], moment: datetime) -> tuple[list[str], bool]:
    """The lines nearest the moment (clipped to MAX_LINE_CHARS), at most
    MAX_LINES and MAX_EXCERPT_BYTES: two before it (the lead-up) for
    each one after; and whether any line was left out or clipped."""
    clipped = [line if len(line) <= MAX_LINE_CHARS
               else line[:MAX_LINE_CHARS] + "…" for line in lines]
    times, last = [], None
    for line in clipped:  # an unstamped line goes with the one before
        last = line_time(line) or last
        times.append(last)
    low = high = next((i for i, t in enumerate(times)
                       if t is not None and t > moment), len(clipped))
    size = 0
    while high - low < MAX_LINES:
        before = low > 0 and ((high - low) % 3 != 2 or high == len(clipped))
        if not before and high == len(clipped):
            break
        cost = len((clipped[low - 1] if before else clipped[high]).encode())
        if size + cost + 1 > MAX_EXCERPT_BYTES:
            break
        size += cost + 1
        low, high = (low - 1, high) if before else (low, high + 1)
    kept = clipped[low:high]
    return kept, len(kept) < len(lines) or clipped != lines


def _size(lines: list[str]) -> int:
    return sum(len(line.encode()) + 1 for line in lines)


def _error(exc: BaseException, redact: Redact) -> str:
    text = str(exc) or type(exc).__name__
    return redact(text)[:MAX_ERROR_CHARS]


def read_excerpt(transport: Transport, template: str, kind: str,
                 moment: datetime, timeout: float, redact: Redact) -> dict:
    """One transition's excerpt, or its error; never raises."""
    since = moment - timedelta(seconds=BEFORE)
    until = moment + timedelta(seconds=AFTER)
    entry = {"transition": kind, "at": moment.isoformat(),
             "since": since.isoformat(), "until": until.isoformat(),
             "lines": [], "truncated": False, "error": None}
    try:
        result = transport.run(command(template, since, until),
                               timeout=timeout, check=True,
                               description=f"logs of {transport.node} "
                               f"around its {kind}")
    except Exception as exc:  # noqa: BLE001 - recorded, never the run's end
        entry["error"] = _error(exc, redact)
        return entry
    lines = [redact(line) for line in result.stdout.splitlines()
             if line.strip()]
    entry["lines"], entry["truncated"] = nearest(lines, moment)
    return entry


def read_node(transport: Transport, template: str,
              moments: list[tuple[str, datetime]], redact: Redact,
              deadline: float) -> dict:
    """The node's excerpts, its commands ending by deadline (monotonic)
    or within NODE_SECONDS if sooner; those past it are recorded as not
    read."""
    deadline = min(deadline, time.monotonic() + NODE_SECONDS)
    excerpts = []
    for kind, moment in moments:
        left = deadline - time.monotonic()
        if left < 1:
            excerpts.append({"transition": kind, "at": moment.isoformat(),
                             "lines": [], "truncated": False,
                             "error": "not read: the time for reading the "
                                      "nodes' logs was spent"})
            continue
        excerpts.append(read_excerpt(transport, template, kind, moment,
                                     left, redact))
    return {"excerpts": excerpts, "error": None}


def _unreadable(name: str, nodes: dict[str, Node]) -> str | None:
    node = nodes.get(name)
    if node is None:
        return "not in the run's topology"
    if node.access is None:
        return "the inventory gives no transport for it"
    return None


def read_node_logs(section: dict, nodes: dict[str, Node],
                   transport_for: Callable[[Node], Transport],
                   command_for: CommandFor, redact: Redact) -> dict:
    """{node: {"excerpts": [...], "error": str | None}} for every node of
    the section that had an outage, within about TOTAL_SECONDS (nodes in
    parallel); never raises."""
    deadline = time.monotonic() + TOTAL_SECONDS
    found: dict[str, dict] = {}
    jobs = {}
    with ThreadPoolExecutor(max_workers=WORKERS,
                            thread_name_prefix="chaosk3s-logs") as pool:
        for name in sorted(section.get("nodes") or {}):
            moments = transitions(section, name)
            if not moments:
                continue
            problem = _unreadable(name, nodes)
            try:
                if problem is None:  # in this thread: targets cache them
                    node = nodes[name]
                    jobs[name] = pool.submit(
                        read_node, transport_for(node), command_for(node),
                        moments, redact, deadline)
            except Exception as exc:  # noqa: BLE001 - recorded as the node's
                problem = _error(exc, redact)
            if problem is not None:
                found[name] = {"excerpts": [], "error": problem}
    for name, job in jobs.items():
        try:
            found[name] = job.result()
        except Exception as exc:  # noqa: BLE001 - recorded as the node's
            found[name] = {"excerpts": [], "error": _error(exc, redact)}
    return cap_total(dict(sorted(found.items())))


def cap_total(found: dict) -> dict:
    """Past MAX_TOTAL_BYTES of lines (nodes by name, excerpts in time
    order), later excerpts keep no lines and say why."""
    used = 0
    for entry in found.values():
        for excerpt in entry["excerpts"]:
            size = _size(excerpt["lines"])
            if used + size > MAX_TOTAL_BYTES:
                excerpt["lines"], excerpt["truncated"] = [], True
                excerpt["error"] = (f"left out: the run's excerpts reached "
                                    f"{MAX_TOTAL_BYTES} bytes")
            else:
                used += size
    return found
