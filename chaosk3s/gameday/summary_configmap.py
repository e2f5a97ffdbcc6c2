"""A game day's summary written back into the cluster as a ConfigMap.

The exported CronJob's pod keeps nothing (unless it has a
PersistentVolumeClaim): with `gameday run --summary-configmap NS/NAME`
(what `gameday export --cronjob FILE --summary-configmap` puts in the
pod's command) the runner writes each game day's summary into that
ConfigMap when it ends: its verdict, per-experiment status and seconds,
its start and end, never a journal, redacted as the summary file is
(chaosk3s.redact), each run at most MAX_RUN_BYTES.

The ConfigMap is the export's own (created empty by `kubectl apply`), so
the runner needs only `get` and `update` on that one name: a key per run
(`run-<UTC start>.json`) and `latest.json`, the oldest runs dropped past
KEEP_RUNS (or the plan's `retention.keep_runs`, if fewer) or
MAX_TOTAL_BYTES of data (a ConfigMap holds at most 1 MiB). The update
carries the resourceVersion it read and is retried on a conflict.

A skipped game day (outside its windows) writes nothing. A summary that
cannot be written turns a completed game day into an error (exit 2):
the evidence that was asked for is missing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime

from chaosk3s.errors import ChaosK3sError, KubeError, KubeRejected, SpecError
from chaosk3s.gameday.lock import cluster_key, utc_now
from chaosk3s.gameday.plan import Plan
from chaosk3s.gameday.redaction import plan_redactor
from chaosk3s.gameday.runner import (
    EXIT_COMPLETED,
    EXIT_DEVIATED,
    EXIT_ERROR,
    EXIT_SKIPPED,
    GamedayResult,
)
from chaosk3s.kube import Kube

KEEP_RUNS = 30
MAX_RUN_BYTES = 16_000
MAX_TOTAL_BYTES = 400_000
MAX_EXPERIMENTS = 100
MAX_TEXT_CHARS = 300
LATEST = "latest.json"
API_TIMEOUT = 10
ATTEMPTS = 3  # updates tried when another writer got in between
VERDICTS = {EXIT_COMPLETED: "completed", EXIT_DEVIATED: "deviated",
            EXIT_ERROR: "error", EXIT_SKIPPED: "skipped"}
# a DNS-1123 subdomain name in a DNS-1123 label namespace
_WHERE = re.compile(r"([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)/"
                    r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)")


def parse_where(value: str) -> tuple[str, str]:
    """NAMESPACE/NAME of the ConfigMap, or SpecError saying what it
    takes."""
    found = _WHERE.fullmatch(value or "")
    if not found:
        raise SpecError(f"--summary-configmap {value!r}: give NAMESPACE/NAME"
                        f" of a ConfigMap (lower-case letters, digits, '-';"
                        f" e.g. chaosk3s/chaosk3s-gameday-nightly-summary)")
    return found.group(1), found.group(3)


def _clip(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= MAX_TEXT_CHARS else \
        text[:MAX_TEXT_CHARS] + "…"


def run_summary(plan: Plan, result: GamedayResult) -> dict:
    """What one game day leaves in the ConfigMap, redacted and at most
    MAX_RUN_BYTES (past it, experiments are left out, and counted)."""
    experiments = [{"experiment": _clip(e.experiment), "status": e.status,
                    "seconds": round(e.seconds, 1), "detail": _clip(e.detail)}
                   for e in result.experiments]
    summary = {"plan": result.plan, "target": _clip(result.target),
               "verdict": VERDICTS.get(result.exit_code, "error"),
               "exit_code": result.exit_code, "started": result.started,
               "finished": result.finished, "message": _clip(result.message),
               "counts": result.counts(),
               "experiments": experiments[:MAX_EXPERIMENTS],
               "experiments_left_out": max(0, len(experiments)
                                           - MAX_EXPERIMENTS)}
    summary = plan_redactor(plan).value(summary)
    while len(_dump(summary).encode()) > MAX_RUN_BYTES and \
            summary["experiments"]:
        summary["experiments"].pop()
        summary["experiments_left_out"] += 1
    return summary


def _dump(value: dict) -> str:
    return json.dumps(value, indent=1, sort_keys=True)


def run_key(started: str | None, now: datetime) -> str:
    """run-<UTC start, compact>.json: keys sort by time."""
    moment = datetime.fromisoformat(started) if started else now
    return f"run-{moment.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"


def merged(data: dict, key: str, text: str, keep: int) -> dict:
    """The ConfigMap's data with this run added, `latest.json` set, and
    the oldest runs dropped past keep or MAX_TOTAL_BYTES; keys that are
    not the runner's are left as they are."""
    data = data or {}
    runs = {k: v for k, v in data.items() if k.startswith("run-")}
    others = {k: v for k, v in data.items()
              if k not in runs and k != LATEST}
    runs[key] = text
    names = sorted(runs)[-keep:]
    while len(names) > 1 and sum(len(runs[n].encode()) for n in names) \
            + len(text.encode()) > MAX_TOTAL_BYTES:
        names.pop(0)
    return {**others, **{n: runs[n] for n in names}, LATEST: text}


def write_summary(kube: Kube, namespace: str, name: str, key: str,
                  text: str, keep: int) -> None:
    """Read, merge and update the ConfigMap (retried on a conflict);
    KubeError when it cannot be written."""
    for attempt in range(ATTEMPTS):
        current = kube.call("read_namespaced_config_map", API_TIMEOUT,
                            name=name, namespace=namespace)
        metadata = current.get("metadata") or {}
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace,
                             "resourceVersion": metadata.get(
                                 "resourceVersion"),
                             "labels": metadata.get("labels") or {}},
                "data": merged(current.get("data") or {}, key, text, keep)}
        try:
            kube.call("replace_namespaced_config_map", API_TIMEOUT,
                      name=name, namespace=namespace, body=body)
            return
        except KubeRejected as exc:
            if exc.status != 409 or attempt == ATTEMPTS - 1:
                raise


def publish(plan: Plan, result: GamedayResult, where: str,
            progress: Callable[[str], None],
            kube: Kube | None = None,
            clock: Callable[[], datetime] = utc_now) -> None:
    """Write the game day's summary into the ConfigMap NAMESPACE/NAME;
    if it cannot be, say so and make a completed game day an error."""
    if result.exit_code == EXIT_SKIPPED:
        return
    namespace, name = parse_where(where)
    summary = run_summary(plan, result)
    keep = min(KEEP_RUNS, plan.retention.keep_runs or KEEP_RUNS)
    try:
        kube = kube or _target_kube(plan)
        write_summary(kube, namespace, name, run_key(result.started,
                                                     clock()),
                      _dump(summary), keep)
    except ChaosK3sError as exc:  # the API, or the target's inventory
        progress(f"could not write the summary to ConfigMap {namespace}/"
                 f"{name}: {plan_redactor(plan).text(str(exc))}")
        if result.exit_code == EXIT_COMPLETED:
            result.exit_code = EXIT_ERROR
            result.message = (f"the summary ConfigMap {namespace}/{name} "
                              f"could not be written")
        return
    progress(f"summary: ConfigMap {namespace}/{name} "
             f"({summary['verdict']})")


def _target_kube(plan: Plan) -> Kube:
    _key, kube = cluster_key(plan.target)
    if kube is None:
        raise KubeError(f"the target {plan.target} has no API up to write "
                        f"to")
    return kube
