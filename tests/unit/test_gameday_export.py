"""Export: systemd units (checked by systemd-analyze where installed)
and the CronJob documents (checked against the Kubernetes schema)."""

import dataclasses
import itertools
import stat
from datetime import UTC, datetime

import pytest
import yaml

from chaosk3s.errors import SpecError
from chaosk3s.gameday.cronjob import cronjob_documents, validate_documents
from chaosk3s.gameday.export import (
    calendar_next,
    on_calendar,
    systemd_analyze,
)
from chaosk3s.gameday.plan import Schedule, load_plan
from chaosk3s.gameday.schedule import occurrences
from chaosk3s.inventory import parse_inventory
from tests.unit.test_gameday_plan import EXAMPLE
from tests.unit.test_gameday_runner import (  # noqa: F401 - fixture
    OK_EXPERIMENT,
    private_state,
    run_cli,
    write_plan,
)

needs_systemd = pytest.mark.skipif(
    systemd_analyze() is None,
    reason="systemd-analyze not installed (Debian package systemd)")


def with_cron(cron: str, zone: str = "Europe/Berlin"):
    return dataclasses.replace(load_plan(EXAMPLE),
                               schedule=Schedule(cron, zone))


@pytest.mark.parametrize(("cron", "expected"), [
    ("0 10 * * 2", "Tue *-*-* 10:00:00 Europe/Berlin"),
    ("*/15 9-17 * * 1-5",
     "Mon,Tue,Wed,Thu,Fri *-*-* 09,10,11,12,13,14,15,16,17:00,15,30,45:00 "
     "Europe/Berlin"),
    ("30 2 1 */3 *", "*-01,04,07,10-01 02:30:00 Europe/Berlin"),
    ("0 0 * * 0", "Sun *-*-* 00:00:00 Europe/Berlin"),
    ("@daily", "*-*-* 00:00:00 Europe/Berlin"),
])
def test_on_calendar(cron, expected):
    assert on_calendar(with_cron(cron)) == expected


@pytest.mark.parametrize(("cron", "why"), [
    ("0 10 1 * 2", "OR"), ("0 10 L * *", "cron-only"),
    ("0 10 * * 2#1", "nth weekday")])
def test_cron_without_an_on_calendar_equivalent(cron, why):
    with pytest.raises(SpecError, match=why) as caught:
        on_calendar(with_cron(cron))
    assert "gameday schedule" in str(caught.value)


@needs_systemd
@pytest.mark.parametrize("cron", ["0 10 * * 2", "*/20 9-11 * * 1-5",
                                  "30 2 1 */3 *", "5 4 * * sun"])
def test_systemd_agrees_with_our_schedule(cron):
    """systemd's own calendar iterations are the runs we compute."""
    plan = with_cron(cron, "America/New_York")
    theirs = calendar_next(on_calendar(plan), 4)  # within HORIZON
    now = datetime.now(UTC)
    ours = [f"{m:%a %Y-%m-%d %H:%M:%S} UTC" for m in itertools.islice(
        occurrences(plan.schedule, now), 4)]
    assert theirs == ours


@needs_systemd
def test_export_systemd_units_verify(tmp_path):
    out = tmp_path / "units"
    done = run_cli("export", str(EXAMPLE), "--systemd", str(out))
    assert done.returncode == 0, done.stderr
    assert "systemd-analyze verify: ok" in done.stdout
    timer = (out / "chaosk3s-gameday-weekly-split-role.timer").read_text()
    assert "OnCalendar=Tue *-*-* 10:00:00 Europe/Berlin" in timer
    service = (out / "chaosk3s-gameday-weekly-split-role.service"
               ).read_text()
    assert f"gameday run --only-in-window {EXAMPLE}" in service
    assert "SuccessExitStatus=3" in service and "KillMode=mixed" in service


def test_export_systemd_refuses_an_inexpressible_cron(tmp_path):
    plan = write_plan(tmp_path, [(OK_EXPERIMENT, {})],
                      schedule={"cron": "0 10 1 * 2", "timezone": "UTC"})
    done = run_cli("export", str(plan), "--systemd", str(tmp_path / "u"))
    assert done.returncode == 2
    assert "gameday schedule" in done.stderr
    assert not (tmp_path / "u").exists()


def test_export_cronjob_is_valid_and_complete(tmp_path):
    out = tmp_path / "cronjob.yaml"
    done = run_cli("export", str(EXAMPLE), "--cronjob", str(out))
    assert done.returncode == 0, done.stderr
    docs = list(yaml.safe_load_all(out.read_text()))
    validate_documents(docs)
    by_kind = {d["kind"]: d for d in docs}
    spec = by_kind["CronJob"]["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert (spec["schedule"], spec["timeZone"]) == ("0 10 * * 2",
                                                    "Europe/Berlin")
    assert spec["startingDeadlineSeconds"] == 3600
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == \
        by_kind["ServiceAccount"]["metadata"]["name"]
    assert by_kind["ClusterRole"]["rules"] == [
        {"apiGroups": [""], "resources": ["nodes"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["events"],
         "verbs": ["list", "create"]},
        {"apiGroups": [""], "resources": ["namespaces"],
         "resourceNames": ["kube-system"], "verbs": ["get"]}]
    role = by_kind["Role"]
    assert role["metadata"]["namespace"] == "kube-system"
    assert {v for r in role["rules"] for v in r["verbs"]} == {
        "get", "create", "update"}
    # the consent is read, never written, by the pod
    assert {"apiGroups": [""], "resources": ["configmaps"],
            "resourceNames": ["chaosk3s-consent"], "verbs": ["get"]} in \
        role["rules"]
    # The ConfigMap's plan, beside its experiments, is a valid plan.
    data = by_kind["ConfigMap"]["data"]
    for key, text in data.items():
        (tmp_path / key).write_text(text)
    exported = load_plan(tmp_path / "plan.yaml")
    assert [e.path.name for e in exported.experiments] == [
        "01-etcd_only_partition.json", "02-node_restart.json"]


def test_export_cronjob_gives_the_pod_its_service_account_and_keys(
        tmp_path):
    """The pod has no kubeconfig and none of this machine's files: the
    inventory drops kubeconfig and contexts, and its SSH keys come from
    a Secret the operator creates (the keys are not in the export)."""
    key, jump_key = tmp_path / "id_ed25519", tmp_path / "jump_key"
    key.write_text("PRIVATE KEY MATERIAL\n")
    jump_key.write_text("OTHER PRIVATE KEY\n")
    known = tmp_path / "known_hosts"
    known.write_text("10.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHost1\n")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({
        "cluster": "prod-k3s", "kubeconfig": str(tmp_path / "kubeconfig"),
        "contexts": ["a", "b"],
        "defaults": {"transport": {"type": "ssh", "user": "ops",
                                   "key_file": str(key),
                                   "known_hosts": str(known)}},
        "nodes": [
            {"name": "server-etcd-0", "role": "etcd", "address": "10.0.0.1"},
            {"name": "agent-0", "role": "agent", "address": "10.0.0.2",
             "transport": {"type": "ssh", "key_file": str(jump_key)}},
            {"name": "agent-1", "role": "agent", "address": "10.0.0.3",
             "transport": {"type": "ssh", "key_file": str(key)}}]}))
    plan = write_plan(tmp_path, [(OK_EXPERIMENT, {})],
                      target=str(inventory))
    out = tmp_path / "cronjob.yaml"
    done = run_cli("export", str(plan), "--cronjob", str(out),
                   "--namespace", "chaos")
    assert done.returncode == 0, done.stderr
    assert "PRIVATE KEY" not in out.read_text()
    secret = "chaosk3s-gameday-tiny-ssh"
    assert (f"kubectl -n chaos create secret generic {secret} "
            f"--from-file=key-1={key} --from-file=key-2={jump_key}"
            ) in done.stdout
    docs = list(yaml.safe_load_all(out.read_text()))
    validate_documents(docs)
    by_kind = {d["kind"]: d for d in docs}
    pod = by_kind["CronJob"]["spec"]["jobTemplate"]["spec"]["template"][
        "spec"]
    assert {"name": "ssh", "secret": {"secretName": secret,
                                      "defaultMode": 0o400}} in pod["volumes"]
    assert {"name": "ssh", "mountPath": "/etc/chaosk3s/ssh",
            "readOnly": True} in pod["containers"][0]["volumeMounts"]
    exported = parse_inventory(yaml.safe_load(
        by_kind["ConfigMap"]["data"]["inventory.yaml"]), "exported")
    assert (exported.kubeconfig, exported.contexts) == (None, (None,))
    assert {n.name: n.access.key_file for n in exported.nodes.values()} == {
        "server-etcd-0": "/etc/chaosk3s/ssh/key-1",
        "agent-0": "/etc/chaosk3s/ssh/key-2",
        "agent-1": "/etc/chaosk3s/ssh/key-1"}
    # host keys travel with the ConfigMap, and the pod checks them
    data = by_kind["ConfigMap"]["data"]
    assert data["known_hosts-1"] == known.read_text()
    assert {n.access.known_hosts for n in exported.nodes.values()} == {
        "/etc/chaosk3s/gameday/known_hosts-1"}
    assert {n.access.host_key_checking for n in exported.nodes.values()
            } == {"strict"}
    assert not (tmp_path / "cronjob.secret.yaml").exists()


@pytest.mark.parametrize(("transport", "refusal"), [
    ({"type": "ssh", "key_file": "/k"}, "has no known_hosts"),
    ({"type": "ssh", "known_hosts": "/kh", "host_key_checking":
      "accept-new"}, "accept any host key on every run")])
def test_export_cronjob_refuses_pods_that_cannot_check_host_keys(
        tmp_path, transport, refusal):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({
        "cluster": "c", "defaults": {"transport": transport},
        "nodes": [{"name": "agent-0", "address": "10.0.0.2"}]}))
    plan = write_plan(tmp_path, [(OK_EXPERIMENT, {})],
                      target=str(inventory))
    out = tmp_path / "cronjob.yaml"
    done = run_cli("export", str(plan), "--cronjob", str(out))
    assert done.returncode == 2 and refusal in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


def test_export_cronjob_puts_secret_material_in_a_secret(tmp_path):
    """An experiment's secrets block, the plan's webhooks and a secret
    var never reach the ConfigMap or the exported file: they go to an
    owner-only Secret file, and the pod sees one directory."""
    planted = {"secret": "xp-secret-value-1", "var": "var-token-2",
               "hook": "https://hooks.example/T0/B0/hook-secret-3"}
    with_secrets = {**OK_EXPERIMENT, "secrets": {"api": {
        "token": planted["secret"]}},
        "configuration": {**OK_EXPERIMENT["configuration"],
                          "api_token": ""}}
    plan = write_plan(tmp_path, [(OK_EXPERIMENT, {}),
                                 (with_secrets,
                                  {"api_token": planted["var"]})],
                      webhooks={"finish": planted["hook"]})
    out = tmp_path / "cronjob.yaml"
    done = run_cli("export", str(plan), "--cronjob", str(out))
    assert done.returncode == 0, done.stderr
    exported, secret_file = out.read_text(), tmp_path / "cronjob.secret.yaml"
    for value in planted.values():
        assert value not in exported and value not in done.stdout
        assert value in secret_file.read_text()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    (secret,) = yaml.safe_load_all(secret_file.read_text())
    validate_documents([secret])
    assert secret["kind"] == "Secret"
    assert sorted(secret["stringData"]) == ["02-exp1.json", "plan.yaml"]
    docs = {d["kind"]: d for d in yaml.safe_load_all(exported)}
    assert sorted(docs["ConfigMap"]["data"]) == ["01-exp0.json"]
    pod = docs["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    plan_volume = next(v for v in pod["volumes"] if v["name"] == "plan")
    assert plan_volume["projected"]["sources"] == [
        {"configMap": {"name": "chaosk3s-gameday-tiny"}},
        {"secret": {"name": "chaosk3s-gameday-tiny-files"}}]
    # the pod's directory: both sources; the plan loads from it
    pod_dir = tmp_path / "pod"
    pod_dir.mkdir()
    for key, text in {**docs["ConfigMap"]["data"],
                      **secret["stringData"]}.items():
        (pod_dir / key).write_text(text)
    loaded = load_plan(pod_dir / "plan.yaml")
    assert loaded.webhook("finish") == planted["hook"]
    assert dict(loaded.experiments[1].vars) == {"api_token": planted["var"]}


def test_schema_validation_rejects_a_broken_document():
    docs = cronjob_documents(load_plan(EXAMPLE)).documents
    docs[-1]["spec"]["concurrencyPolicy"] = 7
    docs[-1]["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"][0]["imagePullPolicy"] = ["Always"]
    with pytest.raises(SpecError, match="CronJob .* schema"):
        validate_documents(docs)
    docs = cronjob_documents(load_plan(EXAMPLE)).documents
    docs[2]["metadata"]["surprise"] = "x"
    with pytest.raises(SpecError, match="ServiceAccount .*surprise"):
        validate_documents(docs)


def test_export_needs_exactly_one_destination(tmp_path):
    done = run_cli("export", str(EXAMPLE))
    assert done.returncode == 2 and "exactly one" in done.stderr
