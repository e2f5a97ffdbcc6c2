"""The game day's summary written into a ConfigMap: against the lab's
emulated API server (real HTTP, real etcd, compare-and-update on
resourceVersion) through the kubernetes client, and the export's
ConfigMap, Role and pod command (the lab API does not enforce RBAC, so
the Role is checked as a manifest and against the Kubernetes schema)."""

import json
from datetime import UTC, datetime

import pytest
import yaml
from kubernetes import client

from chaosk3s.gameday import summary_configmap as summary
from chaosk3s.gameday.cronjob import validate_documents
from chaosk3s.gameday.plan import load_plan
from chaosk3s.gameday.runner import (
    EXIT_COMPLETED,
    EXIT_DEVIATED,
    EXIT_ERROR,
    EXIT_SKIPPED,
    ExperimentResult,
    GamedayResult,
)
from chaosk3s.kube import Kube
from tests.unit.conftest import write_kubeconfig
from tests.unit.test_apiserver import kube as api_client
from tests.unit.test_cronjob_safety import inventory
from tests.unit.test_gameday_runner import (  # noqa: F401 - fixture
    OK_EXPERIMENT,
    private_state,
    run_cli,
    write_plan,
)

NAME = "chaosk3s-gameday-tiny-summary"
SECRET = "hooks.example/T0/B0/very-secret-path"


def plan(tmp_path, **fields):
    return load_plan(write_plan(
        tmp_path, [(OK_EXPERIMENT, {})],
        webhooks={"finish": f"https://{SECRET}"}, **fields))


def result(started: str, code: int = EXIT_DEVIATED, experiments: int = 2,
           detail: str = "") -> GamedayResult:
    return GamedayResult(
        "tiny", "inventory.yaml", code,
        message=f"posted to https://{SECRET}",
        run_dir=None, started=started, finished=started.replace(
            ":00+", ":59+"), experiments=[
            ExperimentResult(f"{i:02d}-exp.json",
                             "deviated" if i == 0 else "completed",
                             detail or "steady state failed", seconds=61.25)
            for i in range(experiments)])


@pytest.fixture
def target(api, tmp_path):
    """The ConfigMap as the export makes it, and a Kube on that API."""
    v1 = client.CoreV1Api(api_client(api))
    v1.create_namespaced_config_map("default", {
        "metadata": {"name": NAME, "labels": {"app": "chaosk3s"}}})
    kube = Kube(str(write_kubeconfig(tmp_path / "kc", api.url)), [None])
    return v1, kube


def data(v1) -> dict:
    return v1.read_namespaced_config_map(NAME, "default").data or {}


def test_each_game_day_lands_in_the_configmap(tmp_path, target):
    v1, kube = target
    said = []
    first = result("2026-11-29T10:00:00+00:00")
    summary.publish(plan(tmp_path), first, f"default/{NAME}", said.append,
                    kube=kube)
    assert first.exit_code == EXIT_DEVIATED  # written: the outcome stands
    summary.publish(plan(tmp_path), result("2026-11-30T10:00:00+00:00",
                                           EXIT_COMPLETED),
                    f"default/{NAME}", said.append, kube=kube)
    found = data(v1)
    assert sorted(found) == ["latest.json", "run-20261129T100000Z.json",
                             "run-20261130T100000Z.json"]
    old = json.loads(found["run-20261129T100000Z.json"])
    assert old["verdict"] == "deviated" and old["exit_code"] == 1
    assert old["started"] == "2026-11-29T10:00:00+00:00"
    assert old["finished"] == "2026-11-29T10:00:59+00:00"
    assert old["counts"] == {"deviated": 1, "completed": 1}
    assert old["experiments"][0] == {
        "experiment": "00-exp.json", "status": "deviated", "seconds": 61.2,
        "detail": "steady state failed"}
    assert json.loads(found["latest.json"])["verdict"] == "completed"
    assert SECRET not in json.dumps(found)  # the plan's webhook: redacted
    meta = v1.read_namespaced_config_map(NAME, "default").metadata
    assert meta.labels == {"app": "chaosk3s"}  # the export's, kept
    assert said[-1] == f"summary: ConfigMap default/{NAME} (completed)"


def test_the_oldest_runs_go_past_the_plans_keep_runs(tmp_path, target):
    v1, kube = target
    kept = plan(tmp_path, retention={"keep_runs": 2})
    for day in (1, 2, 3):
        summary.publish(kept, result(f"2026-12-0{day}T10:00:00+00:00"),
                        f"default/{NAME}", print, kube=kube)
    assert sorted(data(v1)) == ["latest.json", "run-20261202T100000Z.json",
                                "run-20261203T100000Z.json"]


def test_a_concurrent_writer_costs_a_retry_not_its_keys(tmp_path, target):
    """Another writer updates the ConfigMap between our read and our
    update: the API answers 409 Conflict, the runner reads again."""
    v1, kube = target
    calls = []

    class Racing(Kube):
        def call(self, method, *args, **kwargs):
            calls.append(method)
            if method.startswith("replace") and calls.count(method) == 1:
                v1.patch_namespaced_config_map(NAME, "default", {
                    "data": {"run-20261101T000000Z.json": "{}"}})
            return super().call(method, *args, **kwargs)
    racing = Racing(kube.kubeconfig, kube.contexts)
    summary.publish(plan(tmp_path), result("2026-11-29T10:00:00+00:00"),
                    f"default/{NAME}", print, kube=racing)
    assert calls == ["read_namespaced_config_map",
                     "replace_namespaced_config_map"] * 2
    assert {"run-20261101T000000Z.json", "run-20261129T100000Z.json"} <= \
        set(data(v1))


def test_a_missing_configmap_makes_a_completed_game_day_an_error(
        tmp_path, api):
    kube = Kube(str(write_kubeconfig(tmp_path / "kc", api.url)), [None])
    said = []
    done = result("2026-11-29T10:00:00+00:00", EXIT_COMPLETED)
    summary.publish(plan(tmp_path), done, f"default/{NAME}", said.append,
                    kube=kube)
    assert done.exit_code == EXIT_ERROR
    assert done.message == (f"the summary ConfigMap default/{NAME} could "
                            f"not be written")
    assert said[0].startswith(f"could not write the summary to ConfigMap "
                              f"default/{NAME}: ")
    assert "not found" in said[0]


def test_an_unreachable_api_is_an_error_and_a_skip_writes_nothing(
        tmp_path):
    kube = Kube(str(write_kubeconfig(tmp_path / "kc",
                                     "http://127.0.0.1:9")), [None])
    deviated = result("2026-11-29T10:00:00+00:00", EXIT_DEVIATED)
    said = []
    summary.publish(plan(tmp_path), deviated, "default/x", said.append,
                    kube=kube)
    assert deviated.exit_code == EXIT_DEVIATED  # the finding stays
    assert "no API server" in said[0]
    skipped = result("2026-11-29T10:00:00+00:00", EXIT_SKIPPED)
    summary.publish(plan(tmp_path), skipped, "default/x", said.append,
                    kube=kube)
    assert len(said) == 1 and skipped.exit_code == EXIT_SKIPPED


def test_a_summary_and_the_configmap_are_bounded(tmp_path):
    big = result("2026-11-29T10:00:00+00:00", experiments=400,
                 detail="x" * 5000)
    one = summary.run_summary(plan(tmp_path), big)
    text = json.dumps(one, indent=1, sort_keys=True)
    assert len(text.encode()) <= summary.MAX_RUN_BYTES
    assert one["experiments_left_out"] == 400 - len(one["experiments"]) > 0
    assert one["experiments"] and all(
        len(e["detail"]) <= summary.MAX_TEXT_CHARS + 1
        for e in one["experiments"])
    runs = {f"run-2026{i:04d}.json": "y" * 15_000 for i in range(100)}
    merged = summary.merged(runs, "run-2027.json", text, keep=1000)
    assert sum(len(v) for v in merged.values()) <= summary.MAX_TOTAL_BYTES
    assert "run-2027.json" in merged and "run-20260000.json" not in merged
    # the operator's own keys stay
    assert summary.merged({"README": "what this is", **runs},
                          "run-2027.json", text, keep=2)["README"] == \
        "what this is"


@pytest.mark.parametrize("where", ["", "default", "Default/x", "a/b/c",
                                   "default/", "/x", "ns/UPPER"])
def test_a_bad_where_is_refused_before_anything_runs(tmp_path, where):
    marker = tmp_path / "touched"
    path = write_plan(tmp_path, [(OK_EXPERIMENT, {"marker": str(marker)})])
    done = run_cli("run", "--summary-configmap", where, str(path))
    assert done.returncode == 2
    assert "give NAMESPACE/NAME of a ConfigMap" in done.stderr
    assert not marker.exists() and not (tmp_path / "reports").exists()


def test_the_export_makes_the_configmap_and_only_get_update_on_it(
        tmp_path):
    path = write_plan(tmp_path, [(OK_EXPERIMENT, {})],
                      target=str(inventory(tmp_path)))
    out = tmp_path / "cronjob.yaml"
    done = run_cli("export", str(path), "--cronjob", str(out),
                   "--summary-configmap")
    assert done.returncode == 0, done.stderr
    docs = list(yaml.safe_load_all(out.read_text()))
    validate_documents(docs)
    named = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    configmap = named[("ConfigMap", NAME)]
    assert "data" not in configmap  # an apply later keeps the runner's
    assert configmap["metadata"]["namespace"] == "chaosk3s"
    assert named[("Role", NAME)]["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"],
         "resourceNames": [NAME], "verbs": ["get", "update"]}]
    binding = named[("RoleBinding", NAME)]
    assert binding["roleRef"]["name"] == NAME
    assert binding["subjects"] == [{"kind": "ServiceAccount",
                                    "name": "chaosk3s-gameday-tiny",
                                    "namespace": "chaosk3s"}]
    # nothing else may write configmaps: the consent one stays read-only
    for doc in docs:
        for rule in doc.get("rules", []):
            if "configmaps" in rule["resources"] and \
                    set(rule["verbs"]) - {"get"}:
                assert rule["resourceNames"] == [NAME]
    cronjob = next(d for d in docs if d["kind"] == "CronJob")
    command = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"][0]["command"]
    at = command.index("--summary-configmap")
    assert command[at + 1] == f"chaosk3s/{NAME}"
    assert "emptyDir and go with the pod" not in done.stderr


def test_without_the_option_no_summary_configmap(tmp_path):
    path = write_plan(tmp_path, [(OK_EXPERIMENT, {})],
                      target=str(inventory(tmp_path)))
    out = tmp_path / "cronjob.yaml"
    assert run_cli("export", str(path), "--cronjob", str(out)
                   ).returncode == 0
    text = out.read_text()
    assert NAME not in text and "--summary-configmap" not in text
    done = run_cli("export", str(path), "--systemd", str(tmp_path / "u"),
                   "--summary-configmap")
    assert done.returncode == 2 and "are for --cronjob" in done.stderr


def test_the_run_key_is_the_utc_start():
    assert summary.run_key("2026-11-29T11:00:00+01:00", datetime.now(UTC)
                           ) == "run-20261129T100000Z.json"
    assert summary.run_key(None, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
                           ) == "run-20260102T030405Z.json"
