"""What one emulated node knows about itself and the lab."""

import logging
from dataclasses import dataclass
from pathlib import Path

from chaosk3s.lab.etcd import CLIENT_PORT
from chaosk3s.lab.releases import Release
from chaosk3s.lab.spec import LabSpec, NodeSpec, Timings
from chaosk3s.lab.state import LabState

SUPERVISOR_PORT = 6443  # supervisor and Kubernetes API share one port
LB_PORT = 6444  # the agent load balancer, on 127.0.0.1


@dataclass(frozen=True)
class NodeContext:
    spec: LabSpec
    node: NodeSpec
    state: LabState
    log: logging.Logger

    @property
    def release(self) -> Release:
        return self.spec.release_of(self.node)

    @property
    def timings(self) -> Timings:
        return self.spec.timings

    @property
    def runs_lb(self) -> bool:
        """Agents and etcd-only servers reach the API through the LB."""
        return not self.node.runs_apiserver

    @property
    def api_base(self) -> str:
        """Where this node's own clients (kubelet, watches) reach the API."""
        port = LB_PORT if self.runs_lb else SUPERVISOR_PORT
        return f"http://127.0.0.1:{port}"

    @property
    def join_address(self) -> str | None:
        """host:port of the --server this node joined through."""
        if self.node.server is None:
            return None
        return f"{self.spec.node(self.node.server).address}:{SUPERVISOR_PORT}"

    @property
    def lb_default(self) -> str:
        """The LB's default server: the join server, else local (E1)."""
        return self.join_address or f"127.0.0.1:{SUPERVISOR_PORT}"

    @property
    def etcd_endpoints(self) -> list[str]:
        """Local member first on etcd nodes; else the join server's first."""
        members = [n for n in self.spec.nodes if n.runs_etcd]
        first = self.node.name if self.node.runs_etcd else self.node.server
        members.sort(key=lambda n: n.name != first)
        return [f"http://{n.address}:{CLIENT_PORT}" for n in members]

    @property
    def root(self) -> Path:
        """The node's filesystem root (holds var/lib/rancher/k3s)."""
        return self.state.node_root(self.node.name)

    @property
    def lb_state_file(self) -> Path:
        return (self.root / "var/lib/rancher/k3s/agent/etc"
                / "k3s-agent-load-balancer.json")
