"""The exported CronJob keeps its evidence and stops safely: a claim for
reports and ledger, a grace above the heal grace, a Job deadline, no pod
on a node the plan may fault, and the runner as process 1 (checked for
real: a process 1 in a new PID namespace gets the SIGTERM)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from chaosk3s.gameday.cronjob import validate_documents
from chaosk3s.gameday.cronpod import EVIDENCE_DIR
from chaosk3s.gameday.runner import HEAL_GRACE_SECONDS
from tests.unit.test_gameday_runner import (  # noqa: F401 - fixture
    OK_EXPERIMENT,
    plan_outside_today,
    private_state,
    run_cli,
    write_plan,
)

NODES = ["server-etcd-0", "server-cp-0", "agent-0"]


def inventory(tmp_path: Path) -> Path:
    known = tmp_path / "known_hosts"
    known.write_text("10.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHost1\n")
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump({
        "cluster": "prod", "defaults": {"transport": {
            "type": "ssh", "user": "ops", "known_hosts": str(known)}},
        "nodes": [{"name": n, "address": f"10.0.0.{i + 1}"}
                  for i, n in enumerate(NODES)]}))
    return path


def export(tmp_path: Path, *options: str) -> tuple[dict, dict]:
    plan = write_plan(tmp_path, [(OK_EXPERIMENT, {}), (OK_EXPERIMENT, {})],
                      target=str(inventory(tmp_path)),
                      retention={"keep_runs": 5})
    out = tmp_path / "cronjob.yaml"
    done = run_cli("export", str(plan), "--cronjob", str(out), *options)
    assert done.returncode == 0, done.stderr
    docs = list(yaml.safe_load_all(out.read_text()))
    validate_documents(docs)
    by_kind = {d["kind"]: d for d in docs}
    return by_kind, by_kind["CronJob"]["spec"]["jobTemplate"]["spec"]


def test_evidence_on_a_claim_with_the_ledger_beside_the_reports(tmp_path):
    docs, job = export(tmp_path, "--pvc", "2Gi")
    claim = docs["PersistentVolumeClaim"]
    assert claim["metadata"]["name"] == "chaosk3s-gameday-tiny-evidence"
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    pod = job["template"]["spec"]
    assert {"name": "evidence", "persistentVolumeClaim": {
        "claimName": "chaosk3s-gameday-tiny-evidence"}} in pod["volumes"]
    [container] = pod["containers"]
    assert {"name": "evidence", "mountPath": EVIDENCE_DIR} in \
        container["volumeMounts"]
    env = {e["name"]: e for e in container["env"]}
    assert env["CHAOSK3S_LEDGER_DIR"]["value"].startswith(EVIDENCE_DIR)
    plan = yaml.safe_load(docs["ConfigMap"]["data"]["plan.yaml"])
    assert plan["report_dir"].startswith(EVIDENCE_DIR)
    assert plan["retention"] == {"keep_runs": 5}  # the claim keeps runs


def test_without_a_claim_the_evidence_goes_with_the_pod(tmp_path):
    docs, job = export(tmp_path)
    assert "PersistentVolumeClaim" not in docs
    assert {"name": "evidence", "emptyDir": {}} in \
        job["template"]["spec"]["volumes"]
    assert "retention" not in yaml.safe_load(
        docs["ConfigMap"]["data"]["plan.yaml"])


def test_stops_safely_and_stays_off_the_faulted_nodes(tmp_path):
    _docs, job = export(tmp_path, "--deadline-minutes", "90")
    pod = job["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > HEAL_GRACE_SECONDS
    assert job["activeDeadlineSeconds"] == 90 * 60
    assert job["backoffLimit"] == 0
    [term] = pod["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [{
        "key": "kubernetes.io/hostname", "operator": "NotIn",
        "values": sorted(NODES)}]
    command = pod["containers"][0]["command"]
    assert command[:3] == ["chaosk3s", "gameday", "run"]  # no shell: PID 1
    assert "--skipped-ok" in command and "--only-in-window" in command


def test_the_default_deadline_is_30_minutes_per_experiment(tmp_path):
    _docs, job = export(tmp_path)
    assert job["activeDeadlineSeconds"] == 3600  # 2 x 30 min, at least 1 h


@pytest.mark.parametrize("options,says", [
    (["--pvc", "lots"], "--pvc 'lots': give a storage size such as 1Gi"),
    (["--deadline-minutes", "0"], "--deadline-minutes"),
])
def test_bad_export_options_write_nothing(tmp_path, options, says):
    plan = write_plan(tmp_path, [(OK_EXPERIMENT, {})])
    out = tmp_path / "cronjob.yaml"
    done = run_cli("export", str(plan), "--cronjob", str(out), *options)
    assert done.returncode == 2 and says in done.stderr
    assert not out.exists()


def test_skipped_ok_exits_0_outside_the_windows(tmp_path):
    plan = plan_outside_today(tmp_path)
    done = run_cli("run", "--only-in-window", "--skipped-ok", str(plan))
    assert done.returncode == 0, done.stderr
    assert "outside the plan's allowed windows" in done.stderr


def as_pid_1(argv: list[str], cwd: Path) -> subprocess.Popen:
    """argv as process 1 of a new PID namespace, as in a container."""
    return subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child",
                             *argv], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))


def descendants(pid: int) -> list[str]:
    """The command lines of every process below pid."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        todo += parents.get(child, [])
        try:
            found.append(Path(f"/proc/{child}/cmdline").read_bytes().replace(
                b"\0", b" ").decode())
        except OSError:
            continue
    return found


def pid_1_of(wrapper: subprocess.Popen) -> int:
    """The host pid of the namespace's process 1 (unshare's child)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{wrapper.pid}/task/{wrapper.pid}/children")
        found = children.read_text().split()
        if found:
            return int(found[0])
        time.sleep(0.05)
    raise AssertionError("no process 1 appeared")


@pytest.mark.skipif(os.geteuid() != 0, reason="a PID namespace needs root")
def test_the_runner_as_process_1_gets_sigterm_and_stops_its_run(tmp_path):
    # the control: a shell as process 1 ignores SIGTERM (no handler)
    shell = as_pid_1(["sh", "-c", "sleep 30; true"], tmp_path)
    try:
        os.kill(pid_1_of(shell), signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            shell.wait(3)
    finally:
        shell.kill()
        shell.wait(10)
    plan = write_plan(tmp_path, [(OK_EXPERIMENT, {"nap": 60})])
    runner = as_pid_1([str(Path(sys.executable).parent / "chaosk3s"),
                       "gameday", "run", "--json", str(plan)], tmp_path)
    try:
        time.sleep(1)
        pid_1 = pid_1_of(runner)
        deadline = time.monotonic() + 60
        while not any("sleep 60" in c for c in descendants(pid_1)):
            assert time.monotonic() < deadline, "the method never started"
            time.sleep(0.2)
        os.kill(pid_1, signal.SIGTERM)
        out, err = runner.communicate(timeout=60)
    finally:
        runner.kill()
    assert "stopping: sent SIGTERM to the chaos run" in err
    result = json.loads(out)
    assert result["exit_code"] == 2
    assert [e["status"] for e in result["experiments"]] == ["interrupted"]
    assert Path(result["experiments"][0]["journal"]).is_file()
