"""chaosk3s.kube over real HTTP: the node Table readiness read against the
emulated API server, and the errors of servers that answer otherwise."""

import http.server
import json
import ssl
import subprocess
import threading

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config import incluster_config
from kubernetes.config.config_exception import ConfigException

from chaosk3s.errors import KubeRejected, SpecError
from chaosk3s.kube import Kube, KubeUnavailable, node_state
from tests.unit.conftest import write_kubeconfig
from tests.unit.test_apiserver import kube as api_client
from tests.unit.test_apiserver import node_body


def _node(name: str, ready: str | None, labels: dict | None = None,
          unschedulable: bool = False) -> dict:
    body = node_body(name, labels)
    conditions = body["status"]["conditions"]
    if ready is None:
        conditions[:] = [c for c in conditions if c["type"] != "Ready"]
    else:
        conditions[0]["status"] = ready
    if unschedulable:
        body["spec"] = {"unschedulable": True}
    return body


def test_readiness_from_the_table_matches_the_node_objects(api, tmp_path):
    v1 = client.CoreV1Api(api_client(api))
    for body in (_node("ready", "True", {"pool": "a"}),
                 _node("cordoned", "True", unschedulable=True),
                 _node("down", "False", {"pool": "a"}),
                 _node("lost", "Unknown"), _node("new", None)):
        v1.create_node(body)
    kube = Kube(str(write_kubeconfig(tmp_path / "kubeconfig", api.url)),
                ["lab"])
    expected = {s.name: s.ready == "True" for s in
                map(node_state, kube.list_nodes()["items"])}
    assert kube.node_readiness() == expected == {
        "cordoned": True, "down": False, "lost": False, "new": False,
        "ready": True}
    assert kube.node_readiness("pool=a") == {"down": False, "ready": True}


class _Canned(http.server.BaseHTTPRequestHandler):
    """Answers every GET with one status and body, whatever is asked;
    keeps the Authorization headers it got."""

    status, body = 200, {}
    authorizations: list

    def do_GET(self):  # noqa: N802 - the http.server hook name
        self.authorizations.append(self.headers.get("Authorization"))
        raw = self.body.encode() if isinstance(self.body, str) \
            else json.dumps(self.body).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture
def canned(tmp_path):
    """canned(status, body) -> a Kube on a server that always says so."""
    servers = []

    def start(status: int, body: dict, tls: ssl.SSLContext | None = None
              ) -> Kube:
        handler = type("Handler", (_Canned,), {
            "status": status, "body": body, "authorizations": []})
        server = http.server.HTTPServer(("127.0.0.1", 0), handler)
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        server.handler = handler
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}"
        return Kube(str(write_kubeconfig(tmp_path / f"kc{len(servers)}",
                                         url)), ["lab"])

    start.servers = servers

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_server_without_tables_is_read_from_its_node_list(canned):
    kube = canned(200, {"kind": "NodeList", "items": [
        _node("a", "True"), _node("b", "False")]})
    assert kube.node_readiness() == {"a": True, "b": False}


def test_server_errors_fail_over_and_client_errors_do_not(canned):
    status = {"kind": "Status", "code": 503, "message": "apiserver disabled"}
    with pytest.raises(KubeUnavailable, match="HTTP 503"):
        canned(503, status).node_readiness()
    with pytest.raises(KubeRejected, match="403 .*apiserver disabled") \
            as refused:
        canned(403, {**status, "code": 403}).node_readiness()
    assert refused.value.status == 403
    # the client library's exception is the cause, not what escapes
    assert isinstance(refused.value.__cause__, ApiException)


def test_an_answer_that_is_not_json_is_an_api_outage(canned):
    """A proxy's HTML error page in front of the API."""
    with pytest.raises(KubeUnavailable, match="not JSON") as broken:
        canned(200, "<html>Bad gateway</html>").list_nodes()
    assert isinstance(broken.value.__cause__, ValueError)


def test_an_unusable_kubeconfig_is_bad_input_naming_it(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    kube = Kube(str(missing), ["prod"])
    with pytest.raises(SpecError, match=f"kubeconfig {missing} with "
                       f"context prod") as bad:
        kube.list_nodes()
    assert isinstance(bad.value.__cause__, ConfigException)


def test_in_a_pod_without_kubeconfig_the_service_account_is_used(
        canned, tmp_path, monkeypatch):
    """What the exported game-day CronJob's pod does: no kubeconfig, the
    API at KUBERNETES_SERVICE_HOST over TLS, the mounted token and CA."""
    cert, key = tmp_path / "ca.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-days", "1", "-subj", "/CN=apiserver",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    canned(200, {"kind": "NodeList", "items": [_node("a", "True")]}, tls)
    server = canned.servers[-1]
    token = tmp_path / "token"
    token.write_text("pod-token")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME",
                        str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME",
                        str(cert))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.server_port))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert Kube(None, []).node_readiness() == {"a": True}
    # The client writes "bearer"; the API server takes either case.
    assert [a.lower() for a in server.handler.authorizations] == [
        "bearer pod-token"]
