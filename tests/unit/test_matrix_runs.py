"""`chaosk3s matrix` end to end without a lab: real `chaos run` children
of tiny process experiments (the release they are given decides whether
they deviate; tests/unit/matrix_standin.py records it where the chaosk3s
control would), run in parallel, judged, reported, stopped by SIGTERM.
The same on real labs is tests/lab/test_matrix_lab.py."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.unit.test_gameday_signals import (
    chaos_children,
    group_alive,
    start,
    stop,
    wait_for_line,
)

ROOT = Path(__file__).resolve().parents[2]
RELEASES = "v1.28.15+k3s1,v1.28.15+k3s-2d0661e3,v1.31.4+k3s1"
# Deviates on bad_release: the method leaves the marker the steady state
# wants absent; each release has a marker of its own.
TINY = {
    "version": "1.0.0", "title": "tiny matrix",
    "description": "deviates on one release",
    "configuration": {
        "target": "lab", "lab_k3s_version": "v1.28.15+k3s-2d0661e3",
        "lab_name": "default", "nap": 0, "bad_release": "", "markers": "",
        "ignore_sigterm": "", "api_token": ""},
    "controls": [{"name": "standin", "provider": {
        "type": "python", "module": "tests.unit.matrix_standin"}}],
    "steady-state-hypothesis": {"title": "no marker", "probes": [
        {"type": "probe", "name": "no-marker", "tolerance": 1,
         "provider": {"type": "process", "path": "test",
                      "arguments": "-e ${markers}/${lab_k3s_version}"}}]},
    "method": [{"type": "action", "name": "nap", "provider": {
        "type": "process", "path": "sh",
        "arguments": "-c '[ \"${lab_k3s_version}\" != \"${bad_release}\" ] "
                     "|| touch \"${markers}/${lab_k3s_version}\"; "
                     "sleep ${nap}'"}}]}


@pytest.fixture(autouse=True)
def private_state(tmp_path, monkeypatch):
    """No lab of this machine is looked at; the stand-in control is
    importable by the children."""
    monkeypatch.setenv("CHAOSK3S_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    (tmp_path / "markers").mkdir()


def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    return path


def matrix(tmp_path: Path, *args: str, timeout: float = 180
           ) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chaosk3s.cli", "matrix", str(tiny(tmp_path)),
         "--out", str(tmp_path / "out"), "--var",
         f"markers={tmp_path / 'markers'}", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
        cwd=tmp_path, env=dict(os.environ))


def runs_of(tmp_path: Path) -> list[dict]:
    return json.loads((tmp_path / "out" / "matrix.json").read_text())["runs"]


def test_three_releases_two_at_a_time_as_expected(tmp_path):
    done = matrix(tmp_path, "--releases", RELEASES, "--jobs", "2",
                  "--var", "nap:int=2", "--var", "bad_release=v1.28.15+k3s1",
                  "--expect", "buggy=deviated")
    assert done.returncode == 0, done.stderr
    runs = runs_of(tmp_path)
    assert [(r["release"], r["family"], r["verdict"], r["matched"])
            for r in runs] == [
        ("v1.28.15+k3s1", "buggy", "deviated", True),
        ("v1.28.15+k3s-2d0661e3", "fix1", "completed", True),
        ("v1.31.4+k3s1", "rework", "completed", True)]
    journals = [json.loads((tmp_path / "out" / r["journal"]).read_text())
                for r in runs]
    # each run was given its release and a lab of its own
    assert [j["chaosk3s"]["lab"]["release"] for j in journals] == \
        [r["release"] for r in runs]
    names = [j["chaosk3s"]["variables"]["lab_name"] for j in journals]
    assert [r["lab"] for r in runs] == names and len(set(names)) == 3
    # two at a time: the first two overlapped, the third waited for one
    spans = [(datetime.fromisoformat(j["start"]),
              datetime.fromisoformat(j["end"])) for j in journals]
    assert spans[1][0] < spans[0][1] and spans[0][0] < spans[1][1]
    assert spans[2][0] >= min(spans[0][1], spans[1][1])
    for run in runs:
        assert (tmp_path / "out" / run["report"]).is_file()
        assert (tmp_path / "out" / run["log"]).is_file()
    assert "every verdict as expected (exit 0)" in done.stderr
    assert "running on lab" in done.stderr


def test_without_expectations_a_deviation_is_a_failure(tmp_path):
    done = matrix(tmp_path, "--releases", RELEASES.split(",", 1)[1] +
                  ",v1.28.15+k3s1", "--jobs", "3",
                  "--var", "bad_release=v1.28.15+k3s1",
                  "--var", "api_token=tok-4242-secret")
    assert done.returncode == 1, done.stderr
    verdicts = {r["release"]: (r["verdict"], r["expected"])
                for r in runs_of(tmp_path)}
    assert verdicts["v1.28.15+k3s1"] == ("deviated", "completed")
    assert "1 not as expected (exit 1)" in done.stderr
    page = (tmp_path / "out" / "matrix.md").read_text()
    assert "| v1.28.15+k3s1 | buggy | deviated (expected completed) |" \
        in page
    # a secret given with --var is in no file of the matrix, nor said
    assert "api_token=" in page and "tok-4242-secret" not in done.stderr
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert "tok-4242-secret" not in path.read_text(), path


def test_var_for_reaches_only_its_releases_runs_typed(tmp_path):
    """--var-for RELEASE KEY=VALUE: the child of that release gets it, as
    Chaos Toolkit types it; the others keep the experiment's default;
    a secret given so is in no file and not said."""
    done = matrix(tmp_path, "--releases", RELEASES, "--jobs", "3",
                  "--var-for", "v1.31.4+k3s1", "bad_release=v1.31.4+k3s1",
                  "--var-for", "v1.28.15+k3s1", "nap:int=1",
                  "--var-for", "v1.28.15+k3s1", "api_token=tok-5151-secret",
                  "--expect", "v1.31.4+k3s1=deviated")
    assert done.returncode == 0, done.stderr
    runs = {r["release"]: r for r in runs_of(tmp_path)}
    assert {v: r["verdict"] for v, r in runs.items()} == {
        "v1.28.15+k3s1": "completed", "v1.28.15+k3s-2d0661e3": "completed",
        "v1.31.4+k3s1": "deviated"}
    given = {v: json.loads((tmp_path / "out" / r["journal"]).read_text())[
        "chaosk3s"]["variables"] for v, r in runs.items()}
    assert given["v1.28.15+k3s1"]["nap"] == 1  # an int, as typed
    assert given["v1.28.15+k3s-2d0661e3"]["nap"] == 0
    assert given["v1.31.4+k3s1"]["bad_release"] == "v1.31.4+k3s1"
    assert given["v1.28.15+k3s1"]["bad_release"] == ""
    assert runs["v1.28.15+k3s1"]["release_variables"] == [
        "nap:int=1", "api_token=«redacted»"]
    page = (tmp_path / "out" / "matrix.md").read_text()
    assert "| v1.31.4+k3s1 with bad_release=v1.31.4+k3s1 | rework | " \
        "deviated |" in page
    assert "tok-5151-secret" not in done.stderr
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert "tok-5151-secret" not in path.read_text(), path


def test_bad_input_starts_nothing(tmp_path):
    done = matrix(tmp_path, "--releases", "v1.28.15+k3s1,v1.27.1+k3s1",
                  "--expect", "v1.28.15+k3s1=deviated")
    assert done.returncode == 2
    assert done.stderr.startswith("chaosk3s: error: --releases "
                                  "v1.27.1+k3s1: unknown K3s release")
    assert not (tmp_path / "out").exists()
    done = matrix(tmp_path, "--releases", "v1.28.15+k3s1", "--var",
                  "lab_name=x")
    assert done.returncode == 2
    assert "--var lab_name: the matrix sets this" in done.stderr
    done = matrix(tmp_path, "--releases", "v1.28.15+k3s1", "--var",
                  "napp=3")
    assert done.returncode == 2
    assert "--var napp: the experiment declares no configuration key " \
        "'napp' (did you mean nap?)" in done.stderr
    assert not (tmp_path / "out").exists()
    assert not any((tmp_path / "markers").iterdir())


def test_sigterm_stops_every_run_and_starts_no_more(tmp_path):
    log = tmp_path / "matrix.log"
    proc = start([sys.executable, "-m", "chaosk3s.cli", "matrix",
                  str(tiny(tmp_path)), "--releases", RELEASES, "--jobs", "2",
                  "--out", str(tmp_path / "out"), "--var", "nap:int=120",
                  "--var", f"markers={tmp_path / 'markers'}"], log)
    try:
        wait_for_line(proc, log, "[2/3] tiny on v1.28.15+k3s-2d0661e3: "
                      "running")
        time.sleep(2.5)  # let both reach their method
        children = chaos_children(proc.pid)
        assert len(children) == 2, log.read_text()
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 3, log.read_text()
        assert time.monotonic() - began < 30
    finally:
        stop(proc)
    output = log.read_text()
    assert output.count("sent SIGTERM; waiting for it to heal") == 2
    assert not any(group_alive(pid, within=5) for pid in children)
    verdicts = [(r["verdict"], r["reason"]) for r in runs_of(tmp_path)]
    assert [v for v, _ in verdicts] == ["interrupted", "interrupted",
                                        "not run"]
    assert verdicts[2][1] == "the matrix was stopped before this run began"
    assert not (tmp_path / "out" / "tiny" / "v1.31.4+k3s1").exists()
    data = json.loads((tmp_path / "out" / "matrix.json").read_text())
    assert data["stopped"] and data["exit_code"] == 3


def test_a_run_deaf_to_sigterm_is_killed_after_the_grace(tmp_path):
    """Its faults would then expire on the nodes; the matrix must not
    wait for ever, nor leave the run's processes behind."""
    from chaosk3s.matrix import parse_releases
    from chaosk3s.matrix_check import make_plan
    from chaosk3s.matrix_run import run_plan
    variables = {"nap": 119, "ignore_sigterm": "yes",
                 "markers": str(tmp_path / "markers")}
    plan = make_plan([tiny(tmp_path)], parse_releases("v1.31.4+k3s1"), {},
                     variables, [a for k, v in variables.items()
                                 for a in ("--var", f"{k}={v}")],
                     (), 1, tmp_path / "out")
    plan.grace = 2.0
    said, stop = [], threading.Event()
    seen = []  # the method's sleep, before the stop: what must go

    def stop_once_napping():
        deadline = time.monotonic() + 15
        while not seen and time.monotonic() < deadline:
            seen.extend(p for p in Path("/proc").glob("[0-9]*/cmdline")
                        if _cmdline(p) == "sleep 119")
            time.sleep(0.2)
        stop.set()
    threading.Thread(target=stop_once_napping, daemon=True).start()
    began = time.monotonic()
    assert run_plan(plan, stop, said.append) is True
    assert time.monotonic() - began < 20
    run = plan.runs[0]
    assert any("did not end 2 s after SIGTERM: killed" in s for s in said)
    assert run.verdict == "error" and run.returncode == -signal.SIGKILL
    assert run.reason == "chaos run exited -9 and left no journal"
    time.sleep(1)
    assert seen, "the method's sleep never started: nothing to check"
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline")
                if _cmdline(p) == "sleep 119"]  # its method's sleep


def _cmdline(path: Path) -> str:
    try:
        return path.read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def test_a_run_that_cannot_start_is_an_error_and_the_rest_go_on(tmp_path):
    from chaosk3s.matrix import parse_releases
    from chaosk3s.matrix_check import make_plan
    from chaosk3s.matrix_run import run_plan
    variables = {"markers": str(tmp_path / "markers")}
    plan = make_plan([tiny(tmp_path)], parse_releases(RELEASES), {},
                     variables, ["--var", f"markers={tmp_path / 'markers'}"],
                     (), 2, tmp_path / "out")
    # where the first run's folder would go, a file
    plan.runs[0].directory.parent.mkdir(parents=True)
    plan.runs[0].directory.write_text("in the way")
    said = []
    assert run_plan(plan, threading.Event(), said.append) is False
    first, *others = plan.runs
    assert first.verdict == "error" and first.seconds is None
    assert first.reason.startswith("not started: [Errno 17] File exists")
    assert [r.verdict for r in others] == ["completed", "completed"]
    assert said[0] == (f"tiny on v1.28.15+k3s1: error (expected "
                       f"completed): {first.reason}")
