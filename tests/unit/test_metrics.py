"""`chaosk3s report --prometheus FILE --pushgateway URL`: the metrics read
back by prometheus-client's own parser, from the file and from what a
local HTTP server on 127.0.0.1 received as a Pushgateway."""

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chaosk3s.report.samples import (
    CUT_AT,
    HEAL_AT,
    NOT_READY_AFTER,
    READY_AFTER_HEAL,
    lab_journal,
)

CHAOSK3S = str(Path(sys.executable).parent / "chaosk3s")
TITLE = "Agents survive losing the control plane"
START = datetime(2026, 11, 25, 21, 39, 50, tzinfo=UTC)


class Gateway(BaseHTTPRequestHandler):
    """Records each request; answers with the server's `status`."""

    def do_PUT(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.command, self.path, body.decode()))
        self.send_response(self.server.status)
        self.end_headers()

    do_POST = do_PUT

    def log_message(self, *args):
        pass


@pytest.fixture
def gateway():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    server.received, server.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def samples(text: str) -> dict[tuple, float]:
    """{(metric, (label, value)...): value} as Prometheus would scrape."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, *sorted(sample.labels.items()))] = \
                sample.value
    return found


def node(metric: str, name: str, role: str = "agent") -> tuple:
    return (metric, ("experiment", TITLE), ("node", name), ("role", role),
            ("target", "lab"))


def verdict(kind: str) -> tuple:
    return ("chaosk3s_run_verdict", ("experiment", TITLE),
            ("target", "lab"), ("verdict", kind))


def journals(tmp_path: Path) -> Path:
    """A game day's history: an older run that deviated (buggy release),
    then the latest, which completed."""
    runs = tmp_path / "reports"
    for day, buggy in ((0, True), (1, False)):
        path = runs / f"day{day}" / "journal.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(lab_journal(
            START + timedelta(days=day), agents=3, buggy=buggy)))
    return runs


def test_textfile_holds_the_latest_runs_figures(tmp_path):
    target = tmp_path / "textfile" / "chaosk3s.prom"
    result = subprocess.run([CHAOSK3S, "report", str(journals(tmp_path)),
                             "--prometheus", str(target)],
                            capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    got = samples(target.read_text())
    assert got[verdict("completed")] == 1.0
    assert got[verdict("deviated")] == 0.0  # the older run's verdict
    run = (("experiment", TITLE), ("target", "lab"))
    assert got[("chaosk3s_run_start_timestamp_seconds", *run)] == \
        (START + timedelta(days=1)).timestamp()
    assert got[("chaosk3s_run_faults", *run)] == 1.0
    assert got[("chaosk3s_run_faults_unhealed", *run)] == 0.0
    for index in range(3):  # the sample's scripted timeline
        name = f"agent-{index}"
        down = CUT_AT + NOT_READY_AFTER + index * 0.3
        up = HEAL_AT + READY_AFTER_HEAL + index * 0.4
        assert got[node("chaosk3s_node_outage_seconds", name)] == \
            pytest.approx(up - down)
        assert got[node("chaosk3s_node_ready_after_heal_seconds",
                        name)] == pytest.approx(up - HEAL_AT)
        assert got[node("chaosk3s_node_recovered", name)] == 1.0
        assert got[node("chaosk3s_node_outages", name)] == 1.0
    # servers never went NotReady: no outage series at all
    assert not [key for key in got if ("node", "server-cp-0") in key]


def test_the_final_views_source_is_its_own_gauge(tmp_path):
    """1: judged on a fresh API read; 0: on the readiness watch's view
    (the API did not answer within the control's bound); absent when the
    journal does not say (older journals)."""
    fresh = ("chaosk3s_run_final_view_fresh", ("experiment", TITLE),
             ("target", "lab"))
    got = {}
    for source in ("api", "watch", None):
        raw = lab_journal(START, agents=2)
        raw["chaosk3s"].pop("final_source")
        if source:
            raw["chaosk3s"]["final_source"] = source
        path = tmp_path / f"{source}.json"
        path.write_text(json.dumps(raw))
        target = tmp_path / f"{source}.prom"
        subprocess.run([CHAOSK3S, "report", str(path), "--prometheus",
                        str(target)], check=True, capture_output=True,
                       timeout=120)
        got[source] = samples(target.read_text()).get(fresh)
    assert got == {"api": 1.0, "watch": 0.0, None: None}


def test_a_node_that_never_came_back_has_no_outage_length(tmp_path):
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(lab_journal(START, agents=2, buggy=True)))
    target = tmp_path / "out.prom"
    subprocess.run([CHAOSK3S, "report", str(path), "--prometheus",
                    str(target)], check=True, capture_output=True,
                   timeout=120)
    got = samples(target.read_text())
    assert got[verdict("deviated")] == 1.0
    assert got[node("chaosk3s_node_recovered", "agent-0")] == 0.0
    assert node("chaosk3s_node_outage_seconds", "agent-0") not in got
    assert got[node("chaosk3s_node_recovered", "agent-1")] == 1.0


def test_pushgateway_receives_the_same_metrics(tmp_path, gateway):
    runs = journals(tmp_path)
    url = f"http://127.0.0.1:{gateway.server_port}"
    textfile = tmp_path / "out.prom"
    result = subprocess.run([CHAOSK3S, "report", str(runs), "--prometheus",
                             str(textfile), "--pushgateway", url],
                            capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    [(method, path, body)] = gateway.received
    assert (method, path) == ("PUT", "/metrics/job/chaosk3s")
    assert samples(body) == samples(textfile.read_text())
    assert samples(body)[verdict("completed")] == 1.0


def test_a_failing_pushgateway_is_named_and_fails_the_command(tmp_path,
                                                             gateway):
    gateway.status = 500
    url = f"http://127.0.0.1:{gateway.server_port}"
    result = subprocess.run([CHAOSK3S, "report", str(journals(tmp_path)),
                             "--pushgateway", url], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert f"pushing to {url} failed" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("url", ["pushgateway:9091", "file:///etc/passwd",
                                 "ftp://127.0.0.1/"])
def test_a_bad_pushgateway_url_is_refused_before_anything_is_written(
        tmp_path, url):
    runs = journals(tmp_path)
    result = subprocess.run([CHAOSK3S, "report", str(runs),
                             "--pushgateway", url], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert "give the Pushgateway's http(s) URL" in result.stderr
    assert not list(runs.rglob("*.html"))
