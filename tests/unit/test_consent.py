"""Consent from the cluster, against the emulated API server (real etcd,
real HTTP, the kubernetes client and kubectl): what a run checks before
anything is injected, and the `chaosk3s consent` / `abort` commands."""

import json
import subprocess

import pytest
import yaml

from chaosk3s import consent
from chaosk3s.errors import NotConsented
from chaosk3s.inventory import parse_inventory
from chaosk3s.kube import Kube
from tests.conftest import run_cli
from tests.unit.conftest import KUBECTL, free_port, write_kubeconfig


@pytest.fixture
def cluster(api, tmp_path):
    """(kube, inventory_path, write(**changes) -> Inventory) for a cluster
    named `prod` served by the emulated API server."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url)
    kube = Kube(str(kubeconfig), ["lab"])
    path = tmp_path / "inv.yaml"

    def write(**changes):
        raw = {"cluster": "prod", "kubeconfig": str(kubeconfig),
               "contexts": ["lab"], **changes}
        raw = {k: v for k, v in raw.items() if v is not None}
        path.write_text(yaml.safe_dump(raw))
        return parse_inventory(raw, str(path))

    return kube, path, write


def test_a_granted_cluster_passes_and_kubectl_sees_the_record(cluster):
    kube, path, write = cluster
    given = consent.grant(kube, "prod", by="alice@desk")
    uid = consent.cluster_uid(kube)
    assert (given.cluster, given.uid, given.granted_by) == (
        "prod", uid, "alice@desk")
    checked = consent.check(write(cluster_uid=uid), kube)
    assert checked.cluster == "prod" and checked.abort is None
    shown = subprocess.run(
        [KUBECTL, "--kubeconfig", write().kubeconfig, "get", "configmap",
         "-n", "kube-system", "chaosk3s-consent", "-o", "json"],
        capture_output=True, text=True, check=True, timeout=30)
    assert json.loads(shown.stdout)["data"]["uid"] == uid


@pytest.mark.parametrize(("setup", "message"), [
    ("none", "has not consented to chaos (no ConfigMap "
             "kube-system/chaosk3s-consent)"),
    ("other-name", "is for cluster 'staging', not 'prod'"),
    ("copied", "was granted on another cluster (UID 0000) and copied"),
    ("aborted", "abort switch of cluster 'prod' is set (by bob@pager at "),
    ("wrong-uid", "is not cluster 'prod': its kube-system namespace has "
                  "UID"),
    ("no-uid", "names no cluster_uid"),
    ("not-allowed", "is not on the allowed list (staging)"),
])
def test_every_missing_piece_refuses_and_says_what_to_do(cluster, setup,
                                                         message):
    kube, path, write = cluster
    uid = consent.cluster_uid(kube)
    inventory = write(cluster_uid=uid)
    if setup == "other-name":
        consent.grant(kube, "staging")
    elif setup != "none":
        consent.grant(kube, "prod")
    if setup == "copied":
        raw = kube.call("read_namespaced_config_map", name=consent.NAME,
                        namespace="kube-system")
        raw["data"]["uid"] = "0000"
        kube.call("replace_namespaced_config_map", name=consent.NAME,
                  namespace="kube-system", body=raw)
    if setup == "aborted":
        consent.set_abort(kube, "bob@pager", "pager went off")
    if setup == "wrong-uid":
        inventory = write(cluster_uid="not-this-one")
    if setup == "no-uid":
        inventory = write()
    if setup == "not-allowed":
        inventory = write(cluster_uid=uid, allowed_clusters=["staging"])
    with pytest.raises(NotConsented, match=message.replace(
            "(", r"\(").replace(")", r"\)")):
        consent.check(inventory, kube)


def test_an_unreachable_api_refuses_with_the_cause(tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "kc",
                                  f"http://127.0.0.1:{free_port()}")
    inventory = parse_inventory({"cluster": "prod", "cluster_uid": "u",
                                 "kubeconfig": str(kubeconfig)}, "inv.yaml")
    with pytest.raises(NotConsented, match="cannot check that cluster "
                       "'prod' consents") as refused:
        consent.check(inventory, Kube(str(kubeconfig), [None]))
    assert refused.value.__cause__ is not None


def test_abort_set_and_cleared_keeps_the_consent(cluster):
    kube, _path, write = cluster
    consent.grant(kube, "prod")
    switch = consent.set_abort(kube, "bob@pager", "stop it")
    assert consent.read_consent(kube).abort == switch
    consent.grant(kube, "prod")  # granting again leaves the switch set
    assert consent.read_consent(kube).abort == switch
    assert consent.clear_abort(kube) is True
    assert consent.clear_abort(kube) is False
    assert consent.check(write(cluster_uid=consent.cluster_uid(kube)),
                         kube).abort is None
    assert consent.withdraw(kube) is True
    assert consent.read_consent(kube) is None
    assert consent.withdraw(kube) is False


def test_the_commands_grant_show_abort_clear_and_withdraw(cluster):
    kube, path, write = cluster
    write()
    granted = run_cli("consent", "--target", str(path), "--by", "alice")
    uid = consent.cluster_uid(kube)
    assert granted.returncode == 0, granted.stderr
    assert f"cluster_uid: {uid}" in granted.stdout
    refused = run_cli("consent", "--status", "--target", str(path))
    assert refused.returncode == 1
    assert "names no cluster_uid" in refused.stderr
    write(cluster_uid=uid)
    allowed = run_cli("consent", "--status", "--target", str(path))
    assert allowed.returncode == 0, allowed.stderr
    assert "granted by alice" in allowed.stdout
    aborted = run_cli("abort", "--target", str(path), "--reason", "pager",
                      "--by", "bob")
    assert aborted.returncode == 0 and "abort switch set" in aborted.stdout
    shown = run_cli("consent", "--status", "--target", str(path))
    assert shown.returncode == 1 and "by bob at " in shown.stdout
    assert "abort switch of cluster 'prod' is set" in shown.stderr
    assert run_cli("abort", "--clear", "--target",
                   str(path)).returncode == 0
    assert run_cli("consent", "--status", "--target",
                   str(path)).returncode == 0
    withdrawn = run_cli("consent", "--withdraw", "--target", str(path))
    assert "consent withdrawn" in withdrawn.stdout
    assert "has not consented" in run_cli(
        "consent", "--status", "--target", str(path)).stderr


def test_consent_refuses_an_inventory_naming_another_cluster(cluster):
    _kube, path, write = cluster
    write(cluster_uid="someone-else")
    done = run_cli("consent", "--target", str(path))
    assert done.returncode == 1
    assert "is its kubeconfig the right one?" in done.stderr
