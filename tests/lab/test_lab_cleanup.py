"""Labs that tests make and break themselves: cleanup and refusals.

These tests own the machine's one lab slot, so they live apart from the
tests that share a module-wide lab.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from chaosk3s.lab.cluster import Lab
from tests.conftest import run_cli
from tests.lab.conftest import assert_nothing_left

pytestmark = pytest.mark.lab


def test_down_after_sigkill_of_lab_up_during_creation(state_root):
    proc = subprocess.Popen([sys.executable, "-m", "chaosk3s.cli", "lab",
                             "up"], stderr=subprocess.PIPE, text=True,
                            env=os.environ.copy())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kill it while etcd starts
        if list(state_root.glob("nodes/*/run/etcd.pid")):
            break
        time.sleep(0.01)
    else:
        pytest.fail("lab up never started etcd")
    assert proc.poll() is None, "lab up ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    result = run_cli("lab", "down")
    assert result.returncode == 0, result.stderr
    assert_nothing_left(state_root)


def test_down_after_sigkill_of_a_finished_lab_up(state_root):
    proc = subprocess.Popen([sys.executable, "-m", "chaosk3s.cli", "lab",
                             "up"], stdout=subprocess.PIPE, text=True)
    assert "remove it" in proc.stdout.read()
    proc.kill()
    proc.wait()
    assert len(Lab().status()) == 6  # still up without its creator
    assert run_cli("lab", "down").returncode == 0
    assert_nothing_left(state_root)
    assert run_cli("lab", "down").returncode == 0  # idempotent


def test_overlapping_subnet_is_refused_before_creating(state_root, tmp_path):
    subprocess.run(["ip", "link", "add", "cktest0", "type", "bridge"],
                   check=True)
    try:
        subprocess.run(["ip", "addr", "add", "10.213.77.1/24", "dev",
                        "cktest0"], check=True)
        spec = tmp_path / "spec.yaml"
        spec.write_text("subnet: 10.213.77.0/24\nnodes:\n"
                        "- {name: server-etcd-0, role: etcd}\n")
        result = run_cli("lab", "up", "--spec", str(spec))
    finally:
        subprocess.run(["ip", "link", "delete", "cktest0"], check=True)
    assert result.returncode == 1
    assert "overlaps the host route 10.213.77" in result.stderr
    assert_nothing_left(state_root)


def test_invalid_spec_changes_nothing(state_root, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("nodes:\n- {name: server-etcd-0, role: etcd}\n"
                    "- {name: agent-0, role: agent, server: nowhere}\n")
    result = run_cli("lab", "up", "--spec", str(spec))
    assert result.returncode == 1
    assert "unknown join server 'nowhere'" in result.stderr
    assert not state_root.exists()
    assert_nothing_left(state_root)


def test_non_root_is_refused_with_what_to_do(state_root):
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-m", "chaosk3s.cli", "lab", "up"],
        capture_output=True, text=True, timeout=60, cwd="/",
        check=False)
    assert result.returncode == 1, result.stderr
    assert "needs root" in result.stderr and "sudo" in result.stderr
    assert not state_root.exists()
