"""Without etcd quorum the API fails with a 5xx Status; it never serves
stale reads, and it recovers once quorum is back."""

import requests

from tests.unit.conftest import wait_for
from tests.unit.test_apiserver import node_body

_http = requests.Session()
_http.trust_env = False


def test_quorum_loss_fails_reads_and_writes(etcd_factory, api_factory):
    cluster = etcd_factory(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    api = api_factory(cluster.endpoints)
    nodes = api.url + "/api/v1/nodes"
    assert _http.post(nodes, json=node_body("before"), timeout=10).ok
    assert _http.get(nodes, timeout=10).ok  # the list cache is filled
    cluster.stop_member(1)
    cluster.stop_member(2)
    for reply in (_http.get(nodes, timeout=30),
                  _http.get(nodes + "/before", timeout=30),
                  _http.post(nodes, json=node_body("after"), timeout=30),
                  _http.get(api.url + "/api/v1/namespaces/default/endpoints"
                            "?watch=1&resourceVersion=1", timeout=30)):
        assert reply.status_code >= 500, reply.text
        status = reply.json()
        assert status["kind"] == "Status"
        assert status["reason"] in ("InternalError", "Timeout")
        assert "etcd" in status["message"]
        assert status["code"] == reply.status_code
    health = _http.get(api.url + "/readyz", timeout=30)
    assert health.status_code == 500
    cluster.start_member(1)
    cluster.wait_healthy()
    wait_for(lambda: _http.get(nodes, timeout=30).ok, timeout=30,
             what="API serving again after quorum is back")
    names = [n["metadata"]["name"] for n in
             _http.get(nodes, timeout=30).json()["items"]]
    assert names == ["before"]
