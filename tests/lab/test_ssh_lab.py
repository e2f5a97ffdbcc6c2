"""The lab reached over SSH as an operator (`lab up --ssh-sudo`): a non-root
account with passwordless sudo for sh, host keys checked against the
inventory's known_hosts; faults and restarts travel over real sshd in
every node; the account and its sudoers rule leave nothing on the host.
And secrets planted everywhere a run can carry them reach no artefact.
"""

import dataclasses
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chaosk3s import actions, probes
from chaosk3s.inventory import load_target
from chaosk3s.lab import operator
from chaosk3s.lab.cluster import Lab
from chaosk3s.lab.spec import default_spec
from chaosk3s.run import end_run
from chaosk3s.target import forget_targets
from chaosk3s.transports import NodeUnreachable, SshTransport, close_all
from tests.lab.conftest import (
    assert_nothing_left,
    lab_names,
    lab_state,
    netns_exec,
)

pytestmark = pytest.mark.lab

CONFIG = {"target": "lab"}
BIN = Path(sys.executable).parent
HOST_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow",
              "/etc/subuid", "/etc/subgid")
HOST_DIRS = ("/etc/sudoers.d", "/run/sudo/ts", "/var/lib/sudo/lectured",
             "/home")


def host_accounts() -> dict:
    """This machine's accounts and sudo state, to compare after."""
    found: dict = {}
    for path in HOST_FILES:
        found[path] = Path(path).read_text() if Path(path).exists() \
            else None
    for path in HOST_DIRS:
        found[path] = sorted(os.listdir(path)) if Path(path).is_dir() \
            else None
    return found


@pytest.fixture(scope="module")
def ssh_lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("sshlab")
    before = host_accounts()
    assert not operator.ours(lab_names()), \
        "a lab operator account is left over"
    os.environ["CHAOSK3S_STATE_DIR"] = str(root / "state")
    os.environ["CHAOSK3S_LEDGER_DIR"] = str(root / "ledger")
    lab = Lab(lab_state(root / "state"))
    try:
        lab.up(dataclasses.replace(default_spec(), ssh=True, ssh_sudo=True))
        yield lab
    finally:
        forget_targets()
        end_run()
        close_all()
        lab.down()
        for key in ("CHAOSK3S_STATE_DIR", "CHAOSK3S_LEDGER_DIR"):
            os.environ.pop(key, None)
    assert_nothing_left(root / "state")
    assert not operator.ours(lab_names())
    assert host_accounts() == before  # user, group, sudoers rule: gone


def test_the_operator_logs_in_and_escalates_with_sudo(ssh_lab, tmp_path):
    inventory = load_target("lab")
    access = inventory.nodes["agent-0"].access
    assert (access.user, access.become) == (lab_names().operator, "sudo")
    assert access.host_key_checking == "strict"
    assert Path(access.known_hosts).exists()
    assert (operator.SUDOERS_DIR / lab_names().sudoers).exists()
    seen = SshTransport("agent-0", access).run(
        'echo "$(id -u) $SUDO_USER $SSH_CONNECTION"').stdout.split()
    assert seen[:2] == ["0", lab_names().operator]  # root, through sudo
    assert seen[4] == access.host  # sudo's env has SSH_CONNECTION again
    plain = dataclasses.replace(access, become=None)
    assert SshTransport("agent-0", plain).run("id -u").stdout != "0\n"
    as_root = dataclasses.replace(access, user="root", become=None)
    with pytest.raises(NodeUnreachable, match="Permission denied"):
        SshTransport("agent-0", as_root).run("true")
    close_all()  # a live master connection is reused without a check
    unknown = dataclasses.replace(access, known_hosts=str(tmp_path / "kh"))
    with pytest.raises(NodeUnreachable, match="Host key verification"):
        SshTransport("agent-0", unknown).run("true")


def test_partition_and_restart_over_ssh_with_sudo(ssh_lab):
    cp = ssh_lab.spec().node("server-cp-0").address
    fault = actions.partition_roles("at-risk", "control-plane", ttl=120,
                                    configuration=CONFIG)
    try:
        assert fault["nodes"] == ["agent-0", "agent-1", "server-etcd-1",
                                  "server-etcd-2"]
        rules = netns_exec("agent-0", "iptables", "-S").stdout
        assert f"-d {cp}/32" in rules and "CHAOSK3S" in rules
        # the management path stays open: a new SSH command still works
        assert len(probes.active_faults(CONFIG)) == 4
    finally:
        actions.heal_partitions(configuration=CONFIG)
    assert probes.active_faults(CONFIG) == []
    done = actions.restart_k3s("name:agent-0", configuration=CONFIG)
    assert done["nodes"][0]["node"] == "agent-0"
    result = probes.wait_for_nodes_ready(40, configuration=CONFIG)
    assert result["all_ready"], result


# -- secrets never leave ---------------------------------------------------
PLANTED = {
    "secrets block": "plant-secrets-block-6f1c",
    "secrets from env": "plant-env-secret-93ab",
    "configuration key": "plant-config-token-27de",
    "plan var": "plant-plan-var-5a0b",
    "url password": "plant-url-pw-11aa",
    "query token": "plant-query-tok-22bb",
    "query sig": "plant-query-sig-33cc",
    "bearer in an exception": "plant-bearer-44dd",
    "inline kubeconfig": "plant-kubeconfig-tok-55ee",
    "webhook": "plant-webhook-66ff",
}


def planted_experiment(tmp_path: Path, closed: str) -> Path:
    """Every way a run carries a secret: its secrets block (inline and
    from the environment), secret-named configuration (an inline
    kubeconfig too), an http provider URL with credentials and tokens,
    an exception with a bearer token, outputs that echo secrets."""
    kubeconfig = yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "users": [{
            "name": "admin", "user": {"token": PLANTED["inline kubeconfig"]}}]})
    url = (f"http://ops:{PLANTED['url password']}@{closed}/status?"
           f"access_token={PLANTED['query token']}&sig="
           f"{PLANTED['query sig']}")
    report_to = tmp_path / "partial.json"
    copy = (f"cp -p \"$(find {tmp_path / 'reports'} -name '01-*.json' | "
            f"head -n1)\" {report_to}")

    def python(name, module, func, arguments=None, **extra):
        return {"type": "probe", "name": name, "provider": {
            "type": "python", "module": module, "func": func,
            "arguments": arguments or {}, **extra}}

    experiment = {
        "version": "1.0.0", "title": "secrets stay secret",
        "description": "every planted secret must stay out of artefacts",
        "configuration": {
            "target": {"type": "env", "key": "CHAOSK3S_TARGET",
                       "default": "lab"},
            "api_token": PLANTED["configuration key"],
            "kubeconfig_inline": kubeconfig},
        "secrets": {
            "app": {"password": PLANTED["secrets block"]},
            "k8s": {"KUBERNETES_API_KEY": {"type": "env",
                                           "key": "CK3S_PLANTED_ENV"}}},
        "controls": [{"name": "chaosk3s", "provider": {
            "type": "python", "module": "chaosk3s.control"}}],
        "runtime": {"rollbacks": {"strategy": "always"}},
        "steady-state-hypothesis": {"title": "ready", "probes": [
            {**python("all-ready", "chaosk3s.probes", "all_nodes_ready"),
             "tolerance": True}]},
        "method": [
            {"type": "action", "name": "cut", "provider": {
                "type": "python", "module": "chaosk3s.actions",
                "func": "partition_roles", "arguments": {
                    "group": "name:agent-1", "peers": "control-plane",
                    "ttl": 60}}},
            {"type": "probe", "name": "http-with-credentials", "provider": {
                "type": "http", "url": url, "timeout": 3}},
            python("raises-with-bearer", "ipaddress", "ip_address",
                   {"address": "Authorization: Bearer "
                               + PLANTED["bearer in an exception"]}),
            python("echo-configuration", "posixpath", "normpath",
                   {"path": "${api_token}"}),
            python("echo-secret", "posixpath", "normpath",
                   {"path": "${password}"}, secrets=["app"]),
            python("echo-env-secret", "posixpath", "normpath",
                   {"path": "${KUBERNETES_API_KEY}"}, secrets=["k8s"]),
            {"type": "action", "name": "copy-partial-journal", "provider": {
                "type": "process", "path": "sh",
                "arguments": ["-c", copy]}},
            {"type": "action", "name": "heal", "provider": {
                "type": "python", "module": "chaosk3s.actions",
                "func": "heal_partitions"}}],
        "rollbacks": [{"type": "action", "name": "heal-again", "provider": {
            "type": "python", "module": "chaosk3s.actions",
            "func": "heal_partitions"}}]}
    path = tmp_path / "planted.json"
    path.write_text(json.dumps(experiment))
    return path


def everything_written(*roots: Path, skip: tuple[Path, ...]) -> dict:
    """path -> text of every file below roots, but the inputs."""
    return {str(p): p.read_text(errors="replace") for root in roots
            for p in sorted(root.rglob("*"))
            if p.is_file() and p not in skip}


def test_planted_secrets_reach_no_artefact(ssh_lab, tmp_path):
    closed = f"{ssh_lab.spec().node('agent-0').address}:9"  # refuses
    experiment = planted_experiment(tmp_path, closed)
    hook = f"http://hooks:{PLANTED['webhook']}@{closed}/T0/B0"
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "name": "planted", "target": "lab", "report_dir": "reports",
        "experiments": [{"path": experiment.name,
                         "vars": {"api_token": PLANTED["plan var"]}}],
        "schedule": {"cron": "0 10 * * 2", "timezone": "UTC"},
        "webhooks": {"start": hook, "finish": hook + "?token=x"}}))
    env = {**os.environ, "CK3S_PLANTED_ENV": PLANTED["secrets from env"],
           "CHAOSK3S_LOCK_DIR": str(tmp_path / "locks")}
    os.umask(0o022)
    # chaos run alone first (no game-day runner redacts after it): the
    # control's own redaction of the journal and of chaos's log file
    alone = tmp_path / "alone"
    alone.mkdir()
    direct = subprocess.run(
        [str(BIN / "chaos"), "--verbose", "--log-file", "chaos.log", "run",
         "--journal-path", "journal.json", "--var",
         f"api_token={PLANTED['plan var']}", str(experiment)], cwd=alone,
        capture_output=True, text=True, timeout=300, check=False, env=env)
    assert direct.returncode == 0, direct.stderr[-3000:]
    assert "api_token" in (alone / "journal.json").read_text()
    done = subprocess.run(
        [str(BIN / "chaosk3s"), "gameday", "run", str(plan)], cwd=tmp_path,
        capture_output=True, text=True, timeout=300, check=False, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "webhook start failed" in done.stderr  # named, never its URL
    export = tmp_path / "export" / "cronjob.yaml"
    exported = subprocess.run(
        [str(BIN / "chaosk3s"), "gameday", "export", str(plan), "--cronjob",
         str(export)], capture_output=True, text=True, timeout=120,
        check=False, env=env)
    assert exported.returncode == 0, exported.stderr

    run_dir = next((tmp_path / "reports" / "planted").iterdir())
    journal = json.loads((run_dir / "01-planted.json").read_text())
    outputs = {r["activity"]["name"]: r for r in journal["run"]}
    # what was planted really ran: the fault, the failures, the echoes
    assert outputs["cut"]["status"] == "succeeded"
    assert outputs["http-with-credentials"]["status"] == "failed"
    assert "ValueError" in "".join(outputs["raises-with-bearer"][
        "exception"])
    assert outputs["echo-env-secret"]["status"] == "succeeded"
    assert (tmp_path / "partial.json").stat().st_size > 0
    secret_export = export.with_name("cronjob.secret.yaml")
    assert PLANTED["plan var"] in secret_export.read_text()  # its place

    written = everything_written(
        tmp_path, Path(os.environ["CHAOSK3S_LEDGER_DIR"]),
        ssh_lab.state.root / "nodes",
        skip=(experiment, plan, secret_export))
    written["gameday output"] = done.stdout + done.stderr
    written["chaos run output"] = direct.stdout + direct.stderr
    written["export output"] = exported.stdout + exported.stderr
    assert any(name.endswith(".debug.log") for name in written)
    assert any(name.endswith("index.html") for name in written)
    for name, text in written.items():
        for what, value in PLANTED.items():
            assert value not in text, f"{what} leaked into {name}"
    for path in [*run_dir.iterdir(), *alone.iterdir(),
                 tmp_path / "partial.json",
                 tmp_path / "reports" / "index.html", secret_export,
                 *Path(os.environ["CHAOSK3S_LEDGER_DIR"]).glob("*.json")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
