"""SIGTERM stops a game day gracefully: the `chaos run` child gets
SIGTERM (so its control would heal), is waited for, reports are written,
the locks are released; the scheduler then exits 0."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.unit.test_gameday_runner import (  # noqa: F401 - fixture
    OK_EXPERIMENT,
    private_state,
    write_plan,
)

DEADLINE = 60.0


def wait_for_line(proc: subprocess.Popen, log: Path, text: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while text not in log.read_text():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def chaos_children(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if proc.name.isdigit() and int(stat.rsplit(")", 1)[1].split()[1]) \
                == pid:
            found.append(int(proc.name))
    return found


def group_alive(group: int, within: float = 10.0) -> bool:
    """Does a process of the group outlive `within` seconds?"""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True


def start(argv: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ))


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)


def test_sigterm_during_a_run_stops_the_chaos_child(tmp_path):
    plan = write_plan(tmp_path, [(OK_EXPERIMENT, {"nap": 120}),
                                 (OK_EXPERIMENT, {})])
    log = tmp_path / "out.log"
    proc = start([sys.executable, "-m", "chaosk3s.gameday.cli", "run",
                  str(plan)], log)
    try:
        wait_for_line(proc, log, "[1/2] exp0.json: running")
        time.sleep(1.5)  # let chaos reach its method
        children = chaos_children(proc.pid)
        assert children, "no chaos run child"
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE) == 2
        assert time.monotonic() - began < DEADLINE / 2
    finally:
        stop(proc)
    output = log.read_text()
    assert "sent SIGTERM to the chaos run" in output
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)
    assert not group_alive(children[0])  # nor its `sleep` activity
    run_dir = next((tmp_path / "reports" / "tiny").iterdir())
    journal = json.loads((run_dir / "01-exp0.json").read_text())
    assert journal["status"] == "interrupted"
    summary = json.loads((run_dir / "gameday.json").read_text())
    assert [e["status"] for e in summary["experiments"]] == [
        "interrupted", "skipped"]


SCHEDULER = """
import sys
from datetime import UTC, datetime, timedelta
from chaosk3s.gameday.plan import load_plan
from chaosk3s.gameday.schedule_loop import Scheduler
real = datetime.now(UTC)
# Start the clock 2 s before the next full minute, so a run is due soon.
offset = real.replace(second=58, microsecond=0) - real
offset += timedelta(minutes=1) if offset.total_seconds() < 0 else \
    timedelta(0)
scheduler = Scheduler(load_plan(sys.argv[1]), step=0.2,
                      clock=lambda: datetime.now(UTC) + offset)
scheduler.install_signals()
sys.exit(scheduler.serve())
"""


def test_sigterm_stops_the_scheduler_after_healing(tmp_path):
    plan = write_plan(tmp_path, [(OK_EXPERIMENT, {"nap": 120})],
                      schedule={"cron": "* * * * *", "timezone": "UTC"})
    log = tmp_path / "out.log"
    proc = start([sys.executable, "-c", SCHEDULER, str(plan)], log)
    try:
        wait_for_line(proc, log, "next game day tiny")
        wait_for_line(proc, log, "[1/1] exp0.json: running")
        time.sleep(1.5)
        children = chaos_children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE) == 0
    finally:
        stop(proc)
    output = log.read_text()
    assert "received SIGTERM" in output
    assert "sent SIGTERM to the chaos run" in output
    assert "exp0.json: interrupted" in output
    assert output.rstrip().endswith("scheduler stopped")
    assert children and not group_alive(children[0])
    assert (tmp_path / "reports" / "index.html").exists()
