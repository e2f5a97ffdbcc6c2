"""What the lab's Kubernetes objects share: times, conditions, and the
bodies of Nodes, node Leases and Status errors.

The kubelet, the node lifecycle controller, the Table printer, virtual
nodes and the host-side readiness wait all read or write these shapes;
they take them from here so that they cannot drift apart.
"""

from datetime import UTC, datetime

NODE_LEASE_NAMESPACE = "kube-node-lease"  # the kubelet's Lease lives here
READY = "Ready"
RFC3339 = "%Y-%m-%dT%H:%M:%SZ"  # metav1.Time
RFC3339_MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"  # metav1.MicroTime (leases)


def now_rfc3339(micro: bool = False) -> str:
    return datetime.now(UTC).strftime(RFC3339_MICRO if micro else RFC3339)


def condition(node: dict, kind: str) -> dict | None:
    """The node's condition of this type, None if it has none."""
    for item in node.get("status", {}).get("conditions") or []:
        if item.get("type") == kind:
            return item
    return None


def ready_status(node: dict) -> str | None:
    """The Ready condition's status ("True", "False", "Unknown") or None."""
    ready = condition(node, READY)
    return ready.get("status") if ready else None


def condition_body(kind: str, status: str, reason: str, heartbeat: str,
                   transition: str, message: str = "") -> dict:
    return {"type": kind, "status": status, "reason": reason,
            "message": message or reason, "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": transition}


def ready_condition(heartbeat: str, transition: str) -> dict:
    """Ready=True as the kubelet posts it."""
    return condition_body(READY, "True", "KubeletReady", heartbeat,
                          transition, "kubelet is posting ready status")


def node_body(name: str, labels: dict, annotations: dict,
              status: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels,
                         "annotations": annotations},
            "spec": {}, "status": status}


def lease_body(name: str, duration: int, renew: str) -> dict:
    """The node's Lease in kube-node-lease, renewed at ``renew``."""
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": NODE_LEASE_NAMESPACE},
            "spec": {"holderIdentity": name,
                     "leaseDurationSeconds": duration, "renewTime": renew}}


def status_body(code: int, reason: str, message: str) -> dict:
    """A metav1 Status of a failed request."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason,
            "code": code}
