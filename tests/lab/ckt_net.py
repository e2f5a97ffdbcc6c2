"""Test-local network namespaces for transport and fault tests.

Same shape as the lab (chaosk3s/lab/hostnet.py) but with names of their
own, so they never touch a running lab: namespaces ``ckt-<name>``, host
veths ``ckt-v<i>``, bridge ``ckt-br0``, subnet 10.213.99.0/24, host .1.
On pytest-xdist worker gwK they are ``cktK-...`` and 10.213.(99-K).0/24,
so parallel workers never share them either (nor any lab's: those start
with ``ck3s``, and subnets 10.213.11 and 10.213.128-255).
Teardown order: processes, then namespaces, then links.
"""

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from chaosk3s.lab import procs
from chaosk3s.lab import ssh as labssh

_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "").removeprefix("gw")
PREFIX = f"ckt{_WORKER}-"
BRIDGE = f"{PREFIX}br0"
SUBNET_PREFIX = f"10.213.{99 - int(_WORKER or 0)}."
HOST_ADDRESS = SUBNET_PREFIX + "1"
FIRST_HOST = 10
UNUSED_ADDRESS = SUBNET_PREFIX + "250"  # on the bridge, nobody there


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True,
                          check=check, timeout=30, stdin=subprocess.DEVNULL)


def namespaces() -> list[str]:
    out = sh("ip", "-j", "netns", "list", check=False).stdout or "[]"
    return sorted(item["name"] for item in json.loads(out)
                  if item["name"].startswith(PREFIX))


def links() -> list[str]:
    out = sh("ip", "-j", "link", "show").stdout or "[]"
    return sorted(item["ifname"] for item in json.loads(out)
                  if item["ifname"].startswith(PREFIX))


@dataclass
class Net:
    """Nodes name -> address, all on ckt-br0."""

    nodes: dict[str, str] = field(default_factory=dict)
    listeners: list[subprocess.Popen] = field(default_factory=list)

    def ns(self, node: str) -> str:
        return PREFIX + node

    def exec(self, node: str, *argv: str, check: bool = True
             ) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.ns(node), *argv, check=check)

    def iptables_save(self, node: str) -> str:
        return self.exec(node, "iptables-save", "-t", "filter").stdout


def create(names: list[str]) -> Net:
    """Bridge + one namespace per name; refuses leftovers of a crash."""
    assert not namespaces() and not links(), (
        f"stale ckt- namespaces/links {namespaces()} {links()}: run "
        f"`python -m tests.lab.ckt_net cleanup`")
    net = Net()
    try:
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", HOST_ADDRESS + "/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        for index, name in enumerate(names):
            address = SUBNET_PREFIX + str(FIRST_HOST + index)
            _node(name, index, address)
            net.nodes[name] = address
    except BaseException:
        destroy(net)
        raise
    return net


def _node(name: str, index: int, address: str) -> None:
    namespace, veth = PREFIX + name, f"{PREFIX}v{index}"
    sh("ip", "netns", "add", namespace)
    sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
       "netns", namespace)
    sh("ip", "link", "set", veth, "master", BRIDGE, "up")
    sh("ip", "-n", namespace, "link", "set", "lo", "up")
    sh("ip", "-n", namespace, "addr", "add", address + "/24", "dev", "eth0")
    sh("ip", "-n", namespace, "link", "set", "eth0", "up")


def destroy(net: Net | None = None) -> None:
    """Processes, then namespaces, then links; then prove it by listing."""
    for proc in net.listeners if net else []:
        procs.signal_and_wait([proc.pid], grace=2)
        proc.wait(timeout=5)
    for namespace in namespaces():
        pids = [int(p) for p in sh("ip", "netns", "pids", namespace,
                                   check=False).stdout.split()]
        procs.signal_and_wait(pids, grace=2)
    for namespace in namespaces():
        sh("ip", "netns", "delete", namespace, check=False)
    for link in links():
        sh("ip", "link", "delete", link, check=False)
    assert namespaces() == [] and links() == [], (namespaces(), links())


# A listener: accept on each port given, answer "ok", close. One process
# per node, threads per port would be overkill: select over sockets.
LISTENER = """
import select, socket, sys
socks = []
for port in map(int, sys.argv[1:]):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64); socks.append(s)
print("listening", flush=True)
while True:
    for s in select.select(socks, [], [], 60)[0]:
        c, _ = s.accept(); c.sendall(b"ok"); c.close()
"""

# A prober: connect to each host:port concurrently, report the outcome.
PROBE = """
import json, socket, sys, time, concurrent.futures as cf
timeout = float(sys.argv[1])
def probe(target):
    host, port = target.rsplit(":", 1)
    start = time.monotonic()
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.settimeout(timeout); data = s.recv(2)
            out = "ok" if data == b"ok" else "closed"
    except ConnectionRefusedError: out = "refused"
    except ConnectionResetError: out = "reset"
    except socket.timeout: out = "timeout"
    except OSError as exc: out = "error:" + str(exc.errno)
    return [target, out, round(time.monotonic() - start, 3)]
with cf.ThreadPoolExecutor(16) as pool:
    print(json.dumps(list(pool.map(probe, sys.argv[2:]))))
"""


def start_listener(net: Net, node: str, ports: list[int]) -> None:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", net.ns(node), sys.executable, "-c",
         LISTENER, *map(str, ports)], stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        start_new_session=True, text=True)
    net.listeners.append(proc)
    assert proc.stdout.readline().strip() == "listening"


def probe(net: Net, node: str, targets: list[tuple[str, int]],
          timeout: float = 1.0) -> dict[tuple[str, int], tuple[str, float]]:
    """From node, connect to (peer node, port) pairs: outcome, seconds."""
    args = [f"{net.nodes[peer]}:{port}" for peer, port in targets]
    out = net.exec(node, sys.executable, "-c", PROBE, str(timeout), *args)
    results = json.loads(out.stdout)
    return {target: (outcome, seconds) for target, (_, outcome, seconds)
            in zip(targets, results, strict=True)}


def outcomes(net: Net, node: str, targets: list[tuple[str, int]],
             timeout: float = 1.0) -> dict[tuple[str, int], str]:
    return {k: v[0] for k, v in probe(net, node, targets, timeout).items()}


def wait_for(condition, timeout: float, interval: float = 0.1):
    """Poll condition() until truthy; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def start_sshd(net: Net, layout: labssh.SshLayout, node: str
               ) -> procs.Service:
    """sshd from chaosk3s.lab.ssh in node's namespace, as the lab runs it."""
    labssh.prepare_node(layout, node, net.nodes[node])
    service = procs.Service(
        node=node, name="sshd", namespace=net.ns(node),
        argv=tuple(labssh.sshd_service_argv(layout, node)),
        log=layout.node_dir(node) / "sshd.log",
        pidfile=layout.node_dir(node) / "service.pid")
    procs.start(service)
    labssh.wait_listening(net.nodes[node], time.monotonic() + 15)
    return service


def cleanup_main() -> None:
    """`python -m tests.lab.ckt_net cleanup`: remove a crashed run's state
    (only ckt- things; also CHAOSK3S timers under /run/chaosk3s/ckt-*;
    PYTEST_XDIST_WORKER=gwK for a parallel worker's cktK- ones)."""
    destroy(None)
    for state in Path("/run/chaosk3s").glob(f"{PREFIX}*"):
        subprocess.run(["rm", "-rf", str(state)], check=False)
    print("ckt- namespaces and links removed")


if __name__ == "__main__" and sys.argv[1:] == ["cleanup"]:
    cleanup_main()
