"""`chaosk3s report --prometheus FILE | --pushgateway URL`: the runs as
Prometheus metrics, in the text exposition format that prometheus-client
writes (for node-exporter's textfile collector) or pushes (to a
Pushgateway, job `chaosk3s`, which replaces that job's metrics).

A time series is one experiment on one target: of several journals of the
same experiment and target (a game day's history), only the latest run
(by start) gives the values, so a series never holds two runs at once.
The figures are the report's, under the report's names: the outage is
NotReady to Ready again; the time after the heal is from the heal of the
node's fault to Ready. A node that never went NotReady has no outage
series; one that never came back has `chaosk3s_node_recovered 0` and no
outage length (it has none); one the run itself still held down at the
steady-state check after the method (`held_down`) has no
`chaosk3s_node_recovered` at all: it was not judged.
`chaosk3s_run_final_view_fresh` says what `recovered` was judged on: 1 a
fresh read of the API, 0 the readiness watch's last view (the API did
not answer within the control's bound); absent when the journal does
not say.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import push_to_gateway

from chaosk3s.errors import OutputError
from chaosk3s.files import write_atomically
from chaosk3s.report.journal import Journal
from chaosk3s.report.verdict import (
    COMPLETED,
    DEVIATED,
    FAILED,
    INTERRUPTED,
    REFUSED,
)

VERDICTS = (COMPLETED, DEVIATED, FAILED, INTERRUPTED, REFUSED)
RUN = ("experiment", "target")
NODE = (*RUN, "node", "role")
JOB = "chaosk3s"
PUSH_TIMEOUT = 10.0  # seconds: a Pushgateway that hangs fails the command


class _Gauges:
    def __init__(self, registry: CollectorRegistry):
        def gauge(name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)
        self.verdict = gauge("chaosk3s_run_verdict", "1 for the run's "
                             "verdict, 0 for the others",
                             (*RUN, "verdict"))
        self.start = gauge("chaosk3s_run_start_timestamp_seconds",
                           "When the run started (Unix time)", RUN)
        self.duration = gauge("chaosk3s_run_duration_seconds",
                              "How long the run took", RUN)
        self.faults = gauge("chaosk3s_run_faults", "Faults the run "
                            "injected", RUN)
        self.unhealed = gauge("chaosk3s_run_faults_unhealed", "Faults the "
                              "journal never saw healed", RUN)
        self.fresh = gauge("chaosk3s_run_final_view_fresh", "1 if the "
                           "nodes were judged on a fresh API read, 0 on "
                           "the readiness watch's last view", RUN)
        self.outages = gauge("chaosk3s_node_outages", "Times the node went "
                             "NotReady", NODE)
        self.recovered = gauge("chaosk3s_node_recovered", "1 if the node "
                               "was Ready again after its last outage",
                               NODE)
        self.outage = gauge("chaosk3s_node_outage_seconds", "The node's "
                            "longest outage that ended: NotReady to Ready",
                            NODE)
        self.after_heal = gauge("chaosk3s_node_ready_after_heal_seconds",
                                "The slowest return to Ready after the "
                                "node's fault was healed", NODE)

    def add_run(self, journal: Journal) -> None:
        run = _run_labels(journal)
        for kind in VERDICTS:
            self.verdict.labels(*run, kind).set(
                int(journal.verdict.kind == kind))
        if journal.start:
            self.start.labels(*run).set(journal.start.timestamp())
        if journal.duration is not None:
            self.duration.labels(*run).set(journal.duration)
        k3s = journal.k3s
        if k3s is None:
            return
        self.faults.labels(*run).set(len(k3s.faults))
        self.unhealed.labels(*run).set(len(k3s.unhealed))
        if k3s.final_source:
            self.fresh.labels(*run).set(int(k3s.final_source == "api"))
        for node in k3s.nodes:
            if not node.outages:
                continue
            labels = (*run, node.name, node.role)
            self.outages.labels(*labels).set(len(node.outages))
            if not node.held_down:  # held down by the run: not judged
                self.recovered.labels(*labels).set(
                    int(not node.down_at_end))
            if node.longest:
                self.outage.labels(*labels).set(node.longest.seconds)
            healed = [o.to_ready_after_heal for o in node.outages
                      if o.to_ready_after_heal is not None]
            if healed:
                self.after_heal.labels(*labels).set(max(healed))


def _run_labels(journal: Journal) -> tuple[str, str]:
    target = journal.k3s.target if journal.k3s else ""
    return journal.title, target or "unknown"


def _started(journal: Journal) -> float:
    return journal.start.timestamp() if journal.start else float("-inf")


def latest_runs(journals: list[Journal]) -> list[Journal]:
    """One journal per (experiment, target): the one that started last."""
    latest: dict[tuple[str, str], Journal] = {}
    for journal in journals:
        key = _run_labels(journal)
        known = latest.get(key)
        if known is None or _started(journal) >= _started(known):
            latest[key] = journal
    return list(latest.values())


def registry_for(journals: list[Journal]) -> CollectorRegistry:
    registry = CollectorRegistry()
    gauges = _Gauges(registry)
    for journal in latest_runs(journals):
        gauges.add_run(journal)
    return registry


def write_textfile(journals: list[Journal], target: Path) -> Path:
    """For node-exporter's textfile collector: the whole file replaced at
    once (it must end in .prom for the collector to read it)."""
    body = generate_latest(registry_for(journals)).decode()
    write_atomically(target, body)
    return target


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutputError(f"--pushgateway {url!r}: give the Pushgateway's "
                           f"http(s) URL, e.g. http://pushgateway:9091")
    return url


def push(journals: list[Journal], url: str) -> str:
    """PUT the metrics to the Pushgateway under job `chaosk3s`."""
    check_url(url)
    try:
        push_to_gateway(url, job=JOB, registry=registry_for(journals),
                        timeout=PUSH_TIMEOUT)
    except OSError as exc:  # URLError and HTTPError are OSErrors
        raise OutputError(f"pushing to {url} failed: {exc}") from exc
    return f"{url} (job {JOB})"
