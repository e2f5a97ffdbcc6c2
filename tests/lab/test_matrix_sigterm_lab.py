"""SIGTERM to `chaosk3s matrix --jobs 2` while both runs' faults are in
place on their own named labs: it exits promptly with 3, every run says
it was stopped (interrupted, or not run) in matrix.json and matrix.md,
and nothing of either lab is left: no namespace, link, process, rule,
fault state or open ledger entry. Observed from outside the matrix.
About a minute; in the lab tier."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaosk3s.lab import hostnet
from chaosk3s.lab.cluster import Lab
from chaosk3s.lab.state import LabState
from chaosk3s.ledger import open_ledgers
from chaosk3s.namedlabs import LabNames
from tests.lab.conftest import assert_nothing_left, lab_names
from tests.lab.k3s_helpers import wait_for

pytestmark = pytest.mark.lab

PARTITION = Path(__file__).resolve().parents[2] / "experiments" / \
    "etcd_only_partition.json"
RELEASES = ["v1.28.15+k3s1", "v1.28.15+k3s-2d0661e3", "v1.31.4+k3s1"]
CUT_NODE = "agent-0"  # at risk: the method cuts it off the control plane
PROMPT_SECONDS = 45  # SIGTERM to exit: both heal and take their lab down


def chaosk3s_rules(lab: str, node: str) -> list[str]:
    """The CHAOSK3S lines of iptables-save in a node's namespace."""
    done = subprocess.run(["ip", "netns", "exec", LabNames(lab).netns(node),
                           "iptables-save"], capture_output=True, text=True,
                          check=False, timeout=20)
    return [line for line in done.stdout.splitlines() if "CHAOSK3S" in line]


def running_labs(log: Path) -> list[str]:
    """The labs the matrix says its runs are running on, in order."""
    return [line.split(" running on lab ", 1)[1].split()[0]
            for line in log.read_text().splitlines()
            if " running on lab " in line]


def both_cut(log: Path) -> list[str] | None:
    labs = running_labs(log)
    if len(labs) == 2 and all(chaosk3s_rules(lab, CUT_NODE)
                              for lab in labs):
        return labs
    return None


def children(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1]
                         .split()[1])
        except (OSError, ValueError):
            continue
        if parent == pid:
            found.append(int(proc.name))
    return found


def stop_everything(proc: subprocess.Popen, labs: list[str]) -> None:
    """A failed test leaves nothing either: the matrix, its runs (each in
    a session of its own) and their labs."""
    groups = children(proc.pid) if proc.poll() is None else []
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for name in labs:
        if hostnet.list_lab_namespaces(LabNames(name)) or \
                hostnet.list_lab_links(LabNames(name)):
            Lab(LabState(name=name)).down()


def test_sigterm_mid_method_with_two_jobs_leaves_nothing(tmp_path,
                                                         monkeypatch):
    assert hostnet.list_lab_namespaces(lab_names()) == [], \
        "another lab is up"
    monkeypatch.setenv("CHAOSK3S_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CHAOSK3S_LEDGER_DIR", str(tmp_path / "ledger"))
    out, log = tmp_path / "out", tmp_path / "matrix.log"
    with open(log, "w") as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chaosk3s.cli", "matrix", str(PARTITION),
             "--releases", ",".join(RELEASES), "--jobs", "2",
             "--var", "partition_seconds=120", "--out", str(out)],
            stdout=output, stderr=subprocess.STDOUT)
    labs: list[str] = []
    try:
        labs = wait_for(lambda: both_cut(log), 90,
                        "both runs' cuts in place") or []
        assert len(set(labs)) == 2
        for name in labs:  # the cut is in place on each lab
            assert hostnet.list_lab_namespaces(LabNames(name))
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(PROMPT_SECONDS + 30)
        took = time.monotonic() - began
    finally:
        stop_everything(proc, labs or running_labs(log))
    said = log.read_text()
    print(f"\nSIGTERM to exit: {took:.1f} s; labs {labs}")
    assert code == 3, said[-3000:]
    assert took < PROMPT_SECONDS, said[-3000:]
    assert said.count("sent SIGTERM; waiting for it to heal") == 2

    data = json.loads((out / "matrix.json").read_text())
    assert data["stopped"] is True and data["exit_code"] == 3
    runs = data["runs"]
    assert [(r["release"], r["verdict"]) for r in runs] == [
        (RELEASES[0], "interrupted"), (RELEASES[1], "interrupted"),
        (RELEASES[2], "not run")]
    assert [r["lab"] for r in runs[:2]] == labs
    assert runs[2]["reason"] == \
        "the matrix was stopped before this run began"
    markdown = (out / "matrix.md").read_text()
    assert "STOPPED before the end" in markdown
    for run in runs:
        assert f"| {run['release']} | {run['family']} | {run['verdict']} " \
               f"(expected completed) |" in markdown
    for run in runs[:2]:  # each healed before it ended: in its journal
        section = json.loads((out / run["journal"]).read_text())[
            "chaosk3s"]
        assert section["faults"] and all(
            f["ended_at"] for f in section["faults"])
        assert section["open_faults"] == []

    for name in labs + [runs[2]["lab"]]:
        names = LabNames(name)
        assert_nothing_left(tmp_path / "state", names)
        assert not Path(names.fault_state_dir).exists()
        assert not LabState(name=name).exists()
        assert open_ledgers(names.target) == ([], [])
    ledgers = [json.loads(p.read_text()) for p in
               (tmp_path / "ledger").glob("*.json")]
    # one per run that began, every fault closed
    assert sorted(ledger["target"] for ledger in ledgers) == sorted(
        f"lab:{name}" for name in labs)
    etcd = subprocess.run(["pgrep", "-af", "etcd"], capture_output=True,
                          text=True, check=False).stdout
    assert not [line for line in etcd.splitlines()
                if str(tmp_path) in line]
