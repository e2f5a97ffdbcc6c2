"""API latency as a node sees it (behind probes.api_latency): run the
inventory's `api_request` command on the node a few times, each timed
with the node's own clock, so the transport's delay stays out of it."""

import statistics

from chaosk3s.errors import ChaosK3sError
from chaosk3s.transports.base import Transport


def timing_script(command: str, requests: int) -> str:
    """sh that runs command requests times and prints, per run, its
    exit status and its duration in microseconds (date +%s%N: GNU
    coreutils or busybox built with nanoseconds)."""
    return "\n".join([
        "i=0", f"while [ $i -lt {int(requests)} ]; do",
        "  s=$(date +%s%N)", f"  ( {command} ) >/dev/null 2>&1; rc=$?",
        "  e=$(date +%s%N)", '  echo "$rc $(( (e - s) / 1000 ))"',
        "  i=$((i + 1))", "done"])


def parse_timings(text: str) -> tuple[list[float], int]:
    """(seconds of the runs that succeeded, how many did not)."""
    seconds, failed = [], 0
    for line in text.splitlines():
        words = line.split()
        if len(words) != 2 or not words[1].lstrip("-").isdigit():
            continue
        if words[0] == "0":
            seconds.append(round(int(words[1]) / 1e6, 4))
        else:
            failed += 1
    return seconds, failed


def measure(transport: Transport, command: str, requests: int,
            timeout: float) -> dict:
    """One node's timings; a node that cannot be reached counts every
    request as failed and says why."""
    try:
        out = transport.run(timing_script(command, requests),
                            timeout=timeout * requests + 10,
                            description="time API requests").stdout
    except ChaosK3sError as exc:
        return {"seconds": [], "median_seconds": None, "max_seconds": None,
                "failed": requests, "error": str(exc)}
    seconds, failed = parse_timings(out)
    failed += max(0, requests - len(seconds) - failed)  # lines missing
    return {"seconds": seconds,
            "median_seconds": statistics.median(seconds) if seconds
            else None, "max_seconds": max(seconds, default=None),
            "failed": failed}


def summarize(per_node: dict[str, dict]) -> dict:
    medians = [n["median_seconds"] for n in per_node.values()
               if n["median_seconds"] is not None]
    return {"nodes": dict(sorted(per_node.items())),
            "max_median_seconds": max(medians, default=None),
            "failed": sum(n["failed"] for n in per_node.values())}
