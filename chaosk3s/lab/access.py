"""How the outside reaches the lab: kubeconfig, inventory, readiness.

The lab only *produces* these files; the extension reads them exactly as
it reads a real cluster's kubeconfig and inventory.
"""

import shlex
import sys
import time
from collections.abc import Callable

import requests
import yaml

from chaosk3s.lab.k3s.context import LB_PORT, SUPERVISOR_PORT
from chaosk3s.lab.k3s.objects import ready_status
from chaosk3s.lab.polling import poll_until
from chaosk3s.lab.spec import LabSpec, NodeSpec
from chaosk3s.lab.ssh import SshLayout, inventory_transport
from chaosk3s.lab.state import LabState

_http = requests.Session()
_http.trust_env = False  # lab traffic never goes through a proxy


def api_urls(spec: LabSpec) -> list[str]:
    return [f"http://{n.address}:{SUPERVISOR_PORT}" for n in spec.nodes
            if n.runs_apiserver]


def write_access_files(state: LabState, spec: LabSpec,
                       ssh_layout: SshLayout) -> None:
    """A kubeconfig with one context per API server, and the inventory."""
    servers = [n for n in spec.nodes if n.runs_apiserver]
    cluster = state.names.cluster
    clusters, contexts = [], []
    for index, node in enumerate(servers):
        name = cluster if index == 0 else f"{cluster}-{node.name}"
        clusters.append({"name": name, "cluster": {
            "server": f"http://{node.address}:{SUPERVISOR_PORT}"}})
        contexts.append({"name": name, "context": {
            "cluster": name, "user": "lab-admin"}})
    state.kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": clusters,
        "contexts": contexts, "current-context": cluster,
        "users": [{"name": "lab-admin", "user": {}}], "preferences": {}},
        sort_keys=False))
    state.inventory.write_text(yaml.safe_dump(
        inventory(state, spec, ssh_layout), sort_keys=False))


def opt_in(state: LabState) -> str:
    """The lab consents to chaos by itself, through the API as a cluster
    admin does with `chaosk3s consent` (chaosk3s.consent), and its
    inventory records the cluster's kube-system UID. Returns the UID."""
    from chaosk3s import consent  # the lab only produces; this is the
    from chaosk3s.kube import Kube  # extension's own path, as a user's
    raw = yaml.safe_load(state.inventory.read_text())
    kube = Kube(raw["kubeconfig"], raw["contexts"])
    given = consent.grant(kube, raw["cluster"], by="chaosk3s lab up")
    raw = {"cluster": raw["cluster"], "cluster_uid": given.uid,
           **{k: v for k, v in raw.items() if k != "cluster"}}
    state.inventory.write_text(yaml.safe_dump(raw, sort_keys=False))
    return given.uid


def lab_commands(state: LabState) -> dict[str, str]:
    """Node commands of the lab, the way systemctl would be on a node.

    Like `systemctl stop k3s` on a server, they stop etcd too (K3s embeds
    it). They run inside the node's namespace like any node-local
    command, written as a user would type them (the environment
    assignment included): an action that backgrounds one (reboot) wraps
    it itself. `status` and `boot_id` print what `systemctl show` and
    /proc/sys/kernel/random/boot_id print on a real node, `logs` what
    `journalctl -u k3s --since --until` prints; `upgrade` switches the
    node to release {version} in place (chaosk3s.lab.upgrade).
    """
    python = shlex.quote(sys.executable)
    root = shlex.quote(str(state.root))
    # A named lab is named on the command line, never taken from the
    # environment the command happens to run in.
    ctl = (f"CHAOSK3S_STATE_DIR={root} {python} -m chaosk3s.lab.nodectl "
           f"{{node}}") if state.names.is_default else (
        f"{python} -m chaosk3s.lab.nodectl --state-dir {root} --lab "
        f"{state.name} {{node}}")
    return {
        "restart": f"{ctl} restart", "stop": f"{ctl} stop",
        "start": f"{ctl} start", "reboot": f"{ctl} reboot",
        "status": f"{ctl} show", "boot_id": f"{ctl} boot-id",
        "upgrade": f"{ctl} upgrade --k3s-version {{version}}",
        "logs": f"{ctl} logs --since @{{since}} --until @{{until}}",
        "serving": f"{python} -c {shlex.quote(_get('6443/ping'))}",
        "etcd_health": f"{python} -c {shlex.quote(_get('2379/health'))}",
        "api_request": api_request(6443),
    }


def api_request(port: int) -> str:
    """One GET of /version on 127.0.0.1:port (the node's own API server,
    or its load balancer); any HTTP answer counts, as curl without -f."""
    code = ("import urllib.error as e, urllib.request as u\n"
            "try:\n"
            "    u.build_opener(u.ProxyHandler({})).open("
            f"'http://127.0.0.1:{port}/version', timeout=10).read()\n"
            "except e.HTTPError:\n"
            "    pass")
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def _get(path: str) -> str:
    """A Python one-liner printing http://127.0.0.1:PATH (no proxy)."""
    return ("import urllib.request as u; print(u.build_opener(u.ProxyHandler"
            f"(dict())).open('http://127.0.0.1:{path}', timeout=3)"
            ".read().decode())")


def inventory(state: LabState, spec: LabSpec,
              ssh_layout: SshLayout) -> dict:
    """The lab as an inventory: netns transports, or ssh with --ssh."""
    commands, names = lab_commands(state), state.names
    return {
        "cluster": names.cluster,
        "allowed_clusters": [names.cluster],
        "kubeconfig": str(state.kubeconfig),
        "contexts": [names.cluster] + [
            f"{names.cluster}-{n.name}" for n in spec.nodes
            if n.runs_apiserver][1:],
        "k3s_version": spec.release.version,
        # The lab exists to be broken: no cap on what a run may fault.
        "blast_radius": {"per_fault": {"default": "100%"},
                         "per_run": {"default": "100%"}},
        # agents and etcd-only servers reach the API through their LB
        "commands": {"servers": commands, "agents": {
            **commands, "api_request": api_request(LB_PORT)}},
        "roles": {"etcd": {"commands": {
            "api_request": api_request(LB_PORT)}}},
        "nodes": [{"name": n.name, "role": n.role, "address": n.address,
                   "join_server": n.server,
                   "transport": inventory_transport(
                       ssh_layout, n.address, sudo=spec.ssh_sudo,
                       operator_user=names.operator)
                   if spec.ssh else {
                       "type": "netns", "namespace": names.netns(n.name)}}
                  for n in spec.nodes],
    }


def _wait_answer(node: NodeSpec, path: str, deadline: float,
                 accept: Callable[[requests.Response], bool]) -> None:
    url = f"http://{node.address}:{SUPERVISOR_PORT}{path}"

    def answered() -> bool:
        try:
            return accept(_http.get(url, timeout=1))
        except requests.RequestException:
            return False

    poll_until(answered, deadline, lambda: f"k3s on {node.name} did not "
               f"answer {url} in time; see its k3s.log")


def wait_supervisor(node: NodeSpec, deadline: float) -> None:
    """Until the node's supervisor answers /ping (k3s is listening)."""
    _wait_answer(node, "/ping", deadline, lambda r: r.text == "pong")


def wait_registered(node: NodeSpec, deadline: float) -> None:
    """Until the node's API server lists itself among the apiservers
    (it is in the `kubernetes` Endpoints that K3s mirrors into etcd)."""
    address = f"{node.address}:{SUPERVISOR_PORT}"
    _wait_answer(node, "/v1-k3s/apiservers", deadline,
                 lambda r: r.ok and address in (r.json() or []))


def wait_serving(node: NodeSpec, deadline: float) -> None:
    """Until k3s on a server serves: /ping, and /readyz where an API
    server runs. A k3s that crash-loops (K3s #11333) never gets there."""
    wait_supervisor(node, deadline)
    if node.runs_apiserver:
        _wait_answer(node, "/readyz", deadline, lambda r: r.ok)


def node_readiness(spec: LabSpec) -> dict[str, str] | None:
    """Node name -> Ready status ("True"/"False"/"Unknown"), from any API
    server that answers; None when none does."""
    for url in api_urls(spec):
        try:
            reply = _http.get(f"{url}/api/v1/nodes", timeout=2)
            if reply.ok:
                return {item["metadata"]["name"]:
                        ready_status(item) or "Unknown"
                        for item in reply.json().get("items", [])}
        except (requests.RequestException, ValueError):
            continue
    return None


def wait_all_ready(spec: LabSpec, deadline: float,
                   progress: Callable[[str], None]) -> None:
    names = {n.name for n in spec.nodes}
    waiting: list[str] = []
    last_report = time.monotonic()

    def all_ready() -> bool:
        nonlocal waiting, last_report
        readiness = node_readiness(spec) or {}
        waiting = sorted(n for n in names if readiness.get(n) != "True")
        if waiting and time.monotonic() - last_report > 5:
            progress(f"still waiting for {', '.join(waiting)}")
            last_report = time.monotonic()
        return not waiting

    poll_until(all_ready, deadline, lambda: (
        f"nodes not Ready in time: {', '.join(waiting)}; see their logs "
        f"under nodes/<node>/logs/k3s.log in the state dir"), interval=0.2)
