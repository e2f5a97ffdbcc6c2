"""The lab's hosts, etcd and services, checked on real namespaces."""

import base64
import errno
import socket
import subprocess
import sys
import time

import pytest
import requests

from chaosk3s.lab import procs
from chaosk3s.lab.etcd import CLIENT_PORT
from tests.conftest import run_cli
from tests.lab.conftest import netns_exec

pytestmark = pytest.mark.lab

_http = requests.Session()
_http.trust_env = False


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_etcd_cluster_is_one_cluster_through_every_member(default_lab):
    members = [n for n in default_lab.spec().nodes if n.runs_etcd]
    first = members[0].address
    reply = _http.post(f"http://{first}:{CLIENT_PORT}/v3/kv/put", json={
        "key": _b64("chaosk3s/test"), "value": _b64("hello")}, timeout=5)
    reply.raise_for_status()
    for member in members:
        got = _http.post(f"http://{member.address}:{CLIENT_PORT}/v3/kv/range",
                         json={"key": _b64("chaosk3s/test")}, timeout=5)
        value = got.json()["kvs"][0]["value"]
        assert base64.b64decode(value) == b"hello", member.name
    listed = _http.post(f"http://{first}:{CLIENT_PORT}/v3/cluster/member/list",
                        json={}, timeout=5).json()["members"]
    assert sorted(m["name"] for m in listed) == [m.name for m in members]


def _can_connect(node: str, address: str, port: int,
                 timeout: float = 1.0) -> bool:
    code = ("import socket,sys\n"
            f"s=socket.socket(); s.settimeout({timeout})\n"
            f"sys.exit(s.connect_ex(('{address}', {port})))")
    return netns_exec(node, sys.executable, "-c", code,
                      check=False).returncode == 0


def test_drop_rule_isolates_exactly_one_link(default_lab):
    spec = default_lab.spec()
    target = spec.node("server-etcd-0")
    cut, spared = spec.node("agent-0"), spec.node("agent-1")
    assert _can_connect(cut.name, target.address, CLIENT_PORT)
    rule = ["INPUT", "-s", cut.address, "-j", "DROP"]
    netns_exec(target.name, "iptables", "-w", "-A", *rule)
    try:
        started = time.monotonic()
        assert not _can_connect(cut.name, target.address, CLIENT_PORT)
        assert time.monotonic() - started >= 0.9  # a time-out, not refused
        assert _can_connect(spared.name, target.address, CLIENT_PORT)
    finally:
        netns_exec(target.name, "iptables", "-w", "-D", *rule)
    assert _can_connect(cut.name, target.address, CLIENT_PORT)
    host_rules = subprocess.run(["iptables", "-S"], capture_output=True,
                                text=True, check=False).stdout
    assert cut.address not in host_rules  # the host's tables were untouched


def test_reboot_restarts_services_and_clears_rules(default_lab):
    spec = default_lab.spec()
    node = spec.node("server-etcd-2")
    before = [procs.pid_of(s) for s in default_lab.services(spec, node)]
    netns_exec(node.name, "iptables", "-w", "-A", "INPUT", "-s",
               spec.node("agent-1").address, "-j", "DROP")
    result = run_cli("lab", "node", node.name, "reboot")
    assert result.returncode == 0, result.stderr
    after = [procs.pid_of(s) for s in default_lab.services(spec, node)]
    assert all(after) and not set(after) & set(before)
    rules = netns_exec(node.name, "iptables", "-S").stdout
    assert "DROP" not in rules
    default_lab.wait_etcd_healthy(spec, time.monotonic() + 20)


def test_node_service_stop_start(default_lab):
    spec = default_lab.spec()
    node = spec.node("server-etcd-1")
    assert run_cli("lab", "node", node.name, "stop", "--service",
                   "etcd").returncode == 0
    status = run_cli("lab", "status").stdout
    line = next(x for x in status.splitlines() if x.startswith(node.name))
    assert "etcd=stopped" in line and "k3s=running" in line
    assert "2/3 members healthy, quorum yes" in status
    assert run_cli("lab", "node", node.name, "start").returncode == 0
    default_lab.wait_etcd_healthy(spec, time.monotonic() + 20)
    bad = run_cli("lab", "node", node.name, "stop", "--service", "kubelet")
    assert bad.returncode == 1 and "has no service 'kubelet'" in bad.stderr
    bad = run_cli("lab", "node", "nope", "restart")
    assert bad.returncode == 1 and "no lab node named 'nope'" in bad.stderr


def test_second_lab_up_is_refused(default_lab):
    result = run_cli("lab", "up")
    assert result.returncode == 1
    assert "already up" in result.stderr and "lab down" in result.stderr


def test_free_port_on_a_node_refuses(default_lab):
    node = default_lab.spec().node("server-cp-0")
    sock = socket.socket()
    sock.settimeout(2)
    began = time.monotonic()
    # Refused at once, not hung (a timeout would give EAGAIN).
    assert sock.connect_ex((node.address, 1)) == errno.ECONNREFUSED
    assert time.monotonic() - began < 1
    sock.close()
