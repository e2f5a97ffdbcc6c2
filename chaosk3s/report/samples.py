"""Realistic sample journals: the #11311 partition run, shaped like a
chaostoolkit 1.19 journal with the chaosk3s section.

Used by the report's tests and benchmark and handy to preview the page
(`python -m chaosk3s.report.samples OUT.json`) without running the lab.
"""

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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


def _nodes(start: datetime, agents: int, buggy: bool) -> tuple[dict, list]:
    nodes: dict[str, dict] = {
        "server-etcd-0": {"role": "etcd", "at_risk": False},
        "server-cp-0": {"role": "control-plane", "at_risk": False}}
    timeline = [{"node": name, "at": _stamp(start, 0), "ready": "True"}
                for name in nodes]
    for index in range(agents):
        name = f"agent-{index}"
        down = CUT_AT + NOT_READY_AFTER + (index % 7) * 0.3
        up = None if buggy and index % 2 == 0 else \
            HEAL_AT + READY_AFTER_HEAL + (index % 5) * 0.4
        nodes[name] = {"role": "agent", "at_risk": True,
                       "not_ready_at": _stamp(start, down),
                       "ready_at": _stamp(start, up) if up else None,
                       "recovered": up is not None,
                       "recovery_seconds": round(up - down, 2) if up
                       else None}
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
    return nodes, timeline


def lab_journal(start: datetime | None = None, agents: int = 3,
                activities: int = 6, buggy: bool = False) -> dict:
    """A journal of the etcd-only partition experiment on the lab: the
    agents lose the control plane, go NotReady, and (unless buggy) come
    back after the heal."""
    start = start or datetime(2026, 11, 25, 21, 39, 50, tzinfo=UTC)
    version = BUGGY if buggy else FIXED
    nodes, timeline = _nodes(start, agents, buggy)
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
        "chaosk3s": {
            "target": "lab", "cluster": "chaosk3s-lab",
            "k3s_versions": [version], "nodes": nodes,
            "timeline": timeline,
            "faults": [{"id": "p-1a2b", "kind": "partition",
                        "nodes": [f"agent-{i}" for i in range(agents)]
                        + ["server-cp-0"],
                        "description": "drop agents <-> server-cp-0",
                        "started_at": _stamp(start, CUT_AT),
                        "ended_at": _stamp(start, HEAL_AT)}]}}


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(lab_journal(
        buggy="--buggy" in sys.argv), indent=2))
