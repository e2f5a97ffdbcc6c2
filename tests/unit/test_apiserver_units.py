"""Pure parts of the API server: durations, roles, patches, selectors."""

import pytest

from chaosk3s.lab.k3s.apiserver.patch import json_patch, strategic_merge
from chaosk3s.lab.k3s.apiserver.resources import ApiError
from chaosk3s.lab.k3s.apiserver.select import label_selector
from chaosk3s.lab.k3s.apiserver.tables import human_duration, node_roles


@pytest.mark.parametrize("seconds,shown", [
    (5, "5s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600, "3h"),
    (9 * 3600, "9h"), (50 * 3600, "2d2h"), (30 * 86400, "30d")])
def test_human_duration_matches_kubectl(seconds, shown):
    assert human_duration(seconds) == shown


def test_roles_column():
    labels = {"node-role.kubernetes.io/master": "true",
              "node-role.kubernetes.io/control-plane": "true",
              "node-role.kubernetes.io/etcd": "true"}
    assert node_roles({"metadata": {"labels": labels}}) == \
        "control-plane,etcd,master"
    assert node_roles({"metadata": {}}) == "<none>"


def test_strategic_merge_primitive_delete_and_replace():
    target = {"metadata": {"finalizers": ["a", "b"]},
              "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]},
             "status": {"conditions": [{"$patch": "replace"},
                                       {"type": "X", "status": "False"}]}}
    merged = strategic_merge(target, patch, ())
    assert merged["metadata"]["finalizers"] == ["b"]
    assert merged["status"]["conditions"] == [{"type": "X",
                                               "status": "False"}]


def test_json_patch_errors_and_escapes():
    doc = {"metadata": {"annotations": {"a/b": "1"}}}
    out = json_patch(doc, [{"op": "copy", "from": "/metadata/annotations/a~1b",
                            "path": "/metadata/annotations/c"}])
    assert out["metadata"]["annotations"] == {"a/b": "1", "c": "1"}
    assert doc["metadata"]["annotations"] == {"a/b": "1"}  # not mutated
    with pytest.raises(ApiError) as missing:
        json_patch(doc, [{"op": "remove", "path": "/spec/x"}])
    assert missing.value.code == 422


def test_label_selector_rejects_garbage():
    assert label_selector("a=b,c notin (d)")({"metadata": {"labels": {
        "a": "b"}}})
    with pytest.raises(ApiError):
        label_selector("a = = b")
