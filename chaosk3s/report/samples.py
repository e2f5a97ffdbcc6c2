"""Realistic sample journals: the #11311 partition run, shaped like a
chaostoolkit 1.19 journal with the chaosk3s section, which the same code
as a real run's builds (chaosk3s.journal_section) from a scripted
readiness timeline.

Used by the report's tests and benchmark and handy to preview the page
(`python -m chaosk3s.report.samples OUT.json`) without running the lab.
"""

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chaosk3s import journal_section
from chaosk3s.model import Node

FIXED, BUGGY = "v1.28.15+k3s1", "v1.28.14+k3s1"
CUT_AT, HEAL_AT, END_AT = 8.0, 38.0, 64.0  # seconds into the run
NOT_READY_AFTER = 12.0  # node-monitor grace (lab timings) plus a poll
READY_AFTER_HEAL = 3.5


def _stamp(start: datetime, offset: float) -> str:
    return (start + timedelta(seconds=offset)).isoformat()


def _run(start: datetime, name: str, kind: str, began: float, took: float,
         output: Any, module: str, func: str, arguments: dict,
         tolerance: Any = None, failed: str = "") -> dict:
    activity: dict[str, Any] = {
        "type": kind, "name": name,
        "provider": {"type": "python", "module": module, "func": func,
                     "arguments": arguments}}
    if tolerance is not None:
        activity["tolerance"] = tolerance
    run = {"activity": activity, "output": None if failed else output,
           "start": _stamp(start, began),
           "status": "failed" if failed else "succeeded",
           "end": _stamp(start, began + took), "duration": took}
    if failed:
        run["exception"] = [
            "Traceback (most recent call last):\n",
            f"chaoslib.exceptions.ActivityFailed: {failed}\n"]
    if tolerance is not None:
        run["tolerance_met"] = output is True and not failed
    return run


def _hypothesis(start: datetime, at: float, ready: bool) -> dict:
    probe = _run(start, "all-nodes-ready", "probe", at, 0.4, ready,
                 "chaosk3s.probes", "all_nodes_ready", {"timeout": 60},
                 tolerance=True)
    return {"steady_state_met": ready, "probes": [probe]}


def _method(start: datetime, activities: int) -> list[dict]:
    runs = [_run(start, "partition-agents-from-control-plane", "action",
                 CUT_AT, 0.3, {"faults": ["p-1a2b"]},
                 "chaosk3s.actions", "partition_roles",
                 {"from_role": "agent", "to_role": "control-plane"})]
    gap = (HEAL_AT - CUT_AT - 1) / max(activities - 2, 1)
    for index in range(max(activities - 2, 0)):
        runs.append(_run(start, f"observe-readiness-{index + 1}", "probe",
                         CUT_AT + 0.5 + index * gap, gap * 0.6,
                         {"not_ready": index > 2}, "chaosk3s.probes",
                         "nodes_not_ready", {"role": "agent"}))
    runs.append(_run(start, "heal-partitions", "action", HEAL_AT, 0.2,
                     {"healed": ["p-1a2b"]}, "chaosk3s.actions",
                     "heal_partitions", {}))
    return runs


def _timeline(start: datetime, agents: int, buggy: bool
              ) -> tuple[list[dict], dict[str, str]]:
    """The readiness a watch would record, and each node's Ready status
    at the steady state after the method."""
    timeline = [{"node": name, "at": _stamp(start, 0), "ready": "True"}
                for name in ("server-etcd-0", "server-cp-0")]
    final = {"server-etcd-0": "True", "server-cp-0": "True"}
    for index in range(agents):
        name = f"agent-{index}"
        down = CUT_AT + NOT_READY_AFTER + (index % 7) * 0.3
        up = None if buggy and index % 2 == 0 else \
            HEAL_AT + READY_AFTER_HEAL + (index % 5) * 0.4
        # the node controller marks a silent node Unknown; once back, the
        # kubelet reports NotReady for a moment before Ready
        timeline += [{"node": name, "at": _stamp(start, 0), "ready": "True"},
                     {"node": name, "at": _stamp(start, down),
                      "ready": "Unknown"}]
        if up:
            timeline += [{"node": name, "at": _stamp(start, up - 1.5),
                          "ready": "False"},
                         {"node": name, "at": _stamp(start, up),
                          "ready": "True"}]
        final[name] = "True" if up else "Unknown"
    return timeline, final


def _topology(agents: int) -> dict[str, Node]:
    """The agents joined through the etcd-only server: at risk."""
    nodes = [Node("server-etcd-0", "etcd", "10.213.11.10", None),
             Node("server-cp-0", "control-plane", "10.213.11.11",
                  "server-etcd-0")]
    nodes += [Node(f"agent-{i}", "agent", f"10.213.12.{i % 250}",
                   "server-etcd-0") for i in range(agents)]
    return {node.name: node for node in nodes}


def _section(start: datetime, agents: int, buggy: bool,
             version: str) -> dict:
    """The chaosk3s section as the control builds it, from a scripted
    timeline; `variables` and `lab` in the shape the control writes."""
    timeline, final = _timeline(start, agents, buggy)
    faults = [{"id": "p-1a2b", "kind": "partition",
               "nodes": [f"agent-{i}" for i in range(agents)],
               "peers": ["server-cp-0"],
               "description": "drop agents <-> server-cp-0",
               "ttl_seconds": 300.0,
               "started_at": _stamp(start, CUT_AT),
               "ended_at": _stamp(start, HEAL_AT)}]
    built = journal_section.section(
        "lab", "chaosk3s-lab", _topology(agents), timeline, faults, final,
        [version] * (agents + 2))
    built["variables"] = {"target": "lab", "lab_k3s_version": version,
                          "partition_seconds": HEAL_AT - CUT_AT,
                          "recovery_timeout": 30}
    built["lab"] = {"release": version,
                    "family": "buggy" if buggy else "fix1",
                    "timings_profile": "lab",
                    "timings": {"node_monitor_grace": 10.0,
                                "node_status_update": 2.0,
                                "lb_health_interval": 1.0}}
    return built


def lab_journal(start: datetime | None = None, agents: int = 3,
                activities: int = 6, buggy: bool = False) -> dict:
    """A journal of the etcd-only partition experiment on the lab: the
    agents lose the control plane, go NotReady, and (unless buggy) come
    back after the heal."""
    start = start or datetime(2026, 11, 25, 21, 39, 50, tzinfo=UTC)
    version = BUGGY if buggy else FIXED
    experiment = {
        "title": "Agents survive losing the control plane",
        "description": "Partition agents from the control-plane-only "
                       "servers; every node must be Ready again after "
                       "the heal (K3s #11311).",
        "tags": ["k3s", "split-role", "11311"],
        "configuration": {"target": "lab", "lab_k3s_version": version,
                          "api_token": "K10abc::server:s3cr3t"},
        "secrets": {"kubernetes": {"KUBERNETES_API_KEY": "sk-live-1"}},
        "steady-state-hypothesis": {"title": "every node Ready"},
        "method": [], "rollbacks": [],
        "runtime": {"rollbacks": {"strategy": "always"}}}
    return {
        "chaoslib-version": "1.44.0", "platform": "Linux-6.1-x86_64",
        "node": "gameday-runner", "experiment": experiment,
        "start": _stamp(start, 0), "status": "completed",
        "deviated": buggy,
        "steady_states": {
            "before": _hypothesis(start, 0.5, True),
            "after": _hypothesis(start, END_AT - 6, not buggy),
            "during": [_hypothesis(start, t, t < CUT_AT + NOT_READY_AFTER
                                   or t > HEAL_AT + READY_AFTER_HEAL + 2
                                   and not buggy)
                       for t in range(2, int(END_AT) - 8, 5)]},
        "run": _method(start, activities),
        "rollbacks": [_run(start, "heal-partitions", "action", END_AT - 4,
                           0.2, {"healed": []}, "chaosk3s.actions",
                           "heal_partitions", {})],
        "end": _stamp(start, END_AT), "duration": END_AT,
        "chaosk3s": _section(start, agents, buggy, version)}


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(lab_journal(
        buggy="--buggy" in sys.argv), indent=2))
