"""Export: systemd units (checked by systemd-analyze where installed)
and the CronJob documents (checked against the Kubernetes schema)."""

import dataclasses
import itertools
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
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]}]
    role = by_kind["Role"]
    assert role["metadata"]["namespace"] == "kube-system"
    assert {v for r in role["rules"] for v in r["verbs"]} == {
        "get", "create", "update"}
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
    key, jump_key = tmp_path / "id_ed25519", tmp_path / "jump key"
    key.write_text("PRIVATE KEY MATERIAL\n")
    jump_key.write_text("OTHER PRIVATE KEY\n")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({
        "cluster": "prod-k3s", "kubeconfig": str(tmp_path / "kubeconfig"),
        "contexts": ["a", "b"],
        "defaults": {"transport": {"type": "ssh", "user": "ops",
                                   "key_file": str(key)}},
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
            f"--from-file=key-1={key} --from-file=key-2='{jump_key}'"
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


def test_schema_validation_rejects_a_broken_document():
    docs, _secret = cronjob_documents(load_plan(EXAMPLE))
    docs[-1]["spec"]["concurrencyPolicy"] = 7
    docs[-1]["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"][0]["imagePullPolicy"] = ["Always"]
    with pytest.raises(SpecError, match="CronJob .* schema"):
        validate_documents(docs)
    docs, _secret = cronjob_documents(load_plan(EXAMPLE))
    docs[2]["metadata"]["surprise"] = "x"
    with pytest.raises(SpecError, match="ServiceAccount .*surprise"):
        validate_documents(docs)


def test_export_needs_exactly_one_destination(tmp_path):
    done = run_cli("export", str(EXAMPLE))
    assert done.returncode == 2 and "exactly one" in done.stderr
