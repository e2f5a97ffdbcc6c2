"""Ready flaps in a window, from a readiness timeline: how often each
node went NotReady and its longest NotReady span. Pure: the probe
(`probes.ready_flaps`) watches, this counts.

A flap is a change from Ready ("True") to not Ready ("False" or
"Unknown", one span however they alternate). A node already not Ready
when the window opens is a span from the window's start but no flap; a
span still open when it closes is counted up to its end and flagged.
"""

from datetime import datetime


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def node_flaps(changes: list[tuple[datetime, str]], start: datetime,
               end: datetime) -> dict:
    """One node's (moment, Ready status) changes, in time order, the
    first being its status when the window opened."""
    flaps, longest, down_since, ready = 0, 0.0, None, None
    for moment, status in changes:
        up = status == "True"
        if not up and down_since is None:
            down_since = max(moment, start)
            flaps += ready is True  # the first entry is no change
        elif up and down_since is not None:
            longest = max(longest, (moment - down_since).total_seconds())
            down_since = None
        ready = up
    still = down_since is not None
    if still:
        longest = max(longest, (end - down_since).total_seconds())
    return {"flaps": flaps, "longest_not_ready_seconds": round(longest, 3),
            "not_ready_at_end": still}


def flaps(timeline: list[dict], names: set[str], start: str,
          end: str) -> dict:
    """Per node of names, and over all: flaps and the longest NotReady
    span within [start, end] (ISO times), from a ReadinessWatch
    timeline ({"node", "at", "ready"})."""
    opened, closed = _at(start), _at(end)
    nodes = {}
    for name in sorted(names):
        changes = [(_at(e["at"]), e["ready"]) for e in timeline
                   if e["node"] == name]
        nodes[name] = node_flaps(sorted(changes, key=lambda c: c[0]),
                                 opened, closed)
    return {"window_seconds": round((closed - opened).total_seconds(), 3),
            "nodes": nodes,
            "max_flaps": max((n["flaps"] for n in nodes.values()),
                             default=0),
            "longest_not_ready_seconds": max(
                (n["longest_not_ready_seconds"] for n in nodes.values()),
                default=0.0)}
