"""The data marker (chaosk3s.markers) against the emulated API server on
real etcd: written and read back, and each way it can be lost seen as
lost, read by an independent client (the kubernetes client)."""

import time

import pytest
from kubernetes import client

from chaosk3s import actions, markers, probes
from chaosk3s.errors import KubeUnavailable
from chaosk3s.kube import Kube
from chaosk3s.tolerances import nothing_lost
from tests.unit.conftest import write_kubeconfig
from tests.unit.test_apiserver import kube as api_client
from tests.unit.test_heal_reproductions import world  # noqa: F401


@pytest.fixture
def kube(api, tmp_path) -> Kube:
    return Kube(str(write_kubeconfig(tmp_path / "kubeconfig", api.url)),
                ["lab"])


def _other_client(api) -> client.CoreV1Api:
    return client.CoreV1Api(api_client(api))


def test_written_marker_is_in_the_cluster_and_reads_back(api, kube):
    written = markers.write(kube, "run1")
    seen = _other_client(api).read_namespaced_config_map(
        markers.NAME, markers.NAMESPACE)
    assert seen.data == {"run": "run1", "token": written["token"]}
    assert seen.metadata.resource_version == written["resource_version"]
    result = markers.check(kube, written)
    assert result["checked"] == ["kube-system/chaosk3s-marker"]
    assert result["lost"] == [] and nothing_lost(result)


def test_a_second_run_overwrites_with_a_new_token(kube):
    first = markers.write(kube, "run1")
    second = markers.write(kube, "run2")
    assert second["token"] != first["token"]
    assert markers.check(kube, second)["lost"] == []
    # the first run's marker is gone: what it wrote no longer reads back
    [lost] = markers.check(kube, first)["lost"]
    assert "run2" in lost and first["token"] in lost


def test_a_deleted_marker_is_lost(api, kube):
    written = markers.write(kube, "run1")
    _other_client(api).delete_namespaced_config_map(markers.NAME,
                                                    markers.NAMESPACE)
    result = markers.check(kube, written)
    assert result["lost"] == [
        f"kube-system/chaosk3s-marker is gone (written with "
        f"resourceVersion {written['resource_version']})"]
    assert not nothing_lost(result)


def test_nothing_written_yet_checks_nothing(kube):
    result = markers.check(kube, None)
    assert result["checked"] == [] and result["lost"] == []


def test_no_api_raises_rather_than_reporting_a_loss(tmp_path):
    kube = Kube(str(write_kubeconfig(tmp_path / "kc", "http://127.0.0.1:9")),
                ["lab"])
    with pytest.raises(KubeUnavailable):
        markers.check(kube, {"run": "r", "token": "t", "configmap": "x",
                             "resource_version": "1"})


def test_nothing_lost_tolerance_reads_only_a_readback():
    assert not nothing_lost(None) and not nothing_lost([])
    assert not nothing_lost({"checked": ["x"], "lost": ["gone"]})


# -- through the public activities, on a consenting cluster -----------------

def test_write_marker_then_readback_through_the_activities(world):  # noqa: F811
    assert probes.marker_readback(configuration=world.config)[
        "checked"] == []  # nothing written by this run yet
    written = actions.write_marker(configuration=world.config)
    seen = world.core.read_namespaced_config_map(markers.NAME,
                                                 markers.NAMESPACE)
    assert seen.data["token"] == written["token"]
    result = probes.marker_readback(configuration=world.config)
    assert result["checked"] == [written["configmap"]]
    assert nothing_lost(result)
    world.core.delete_namespaced_config_map(markers.NAME, markers.NAMESPACE)
    assert not nothing_lost(probes.marker_readback(
        configuration=world.config))


def test_api_unanswered_within_counts_an_outage(world):  # noqa: F811
    """Answered while the API runs; after it stops, every ask is
    unanswered and the probe still lasts its seconds."""
    up = probes.api_unanswered_within(seconds=2, configuration=world.config)
    assert up["unanswered"] == 0 and up["asked"] >= 2
    assert up["last_answered_after_seconds"] is not None
    world.stop_api()
    started = time.monotonic()
    down = probes.api_unanswered_within(seconds="3",
                                        configuration=world.config)
    assert 3 <= time.monotonic() - started < 3 + 2.5
    assert down["unanswered"] == down["asked"] >= 3
    assert down["last_answered_after_seconds"] is None
