"""Helpers for lab tests of K3s behaviour: cut links, read readiness.

Faults are made the way an operator would make them: iptables rules inside
the nodes' own namespaces, never through a backdoor of the emulator.
"""

import time

from kubernetes import client, config

from tests.lab.conftest import netns_exec

TEST_CHAIN = "CK3STEST"


def api(state) -> client.CoreV1Api:
    """A real kubernetes client on the lab kubeconfig."""
    return client.CoreV1Api(config.new_client_from_config(
        config_file=str(state.kubeconfig)))


def readiness(core: client.CoreV1Api) -> dict[str, str]:
    nodes = core.list_node(_request_timeout=5).items
    return {n.metadata.name: next(
        (c.status for c in n.status.conditions or [] if c.type == "Ready"),
        "Unknown") for n in nodes}


def wait_for(predicate, timeout: float, what: str, step: float = 0.25):
    """Poll until predicate() is truthy; return its value or fail."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # the API may be briefly unreachable
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                         f"last: {last!r}")


def cut(nodes: list[str], peer_address: str) -> None:
    """Black-hole traffic between each node and peer, inside the node."""
    for node in nodes:
        netns_exec(node, "iptables", "-w", "-N", TEST_CHAIN)
        netns_exec(node, "iptables", "-w", "-A", TEST_CHAIN, "-s",
                   peer_address, "-j", "DROP")
        netns_exec(node, "iptables", "-w", "-A", TEST_CHAIN, "-d",
                   peer_address, "-j", "DROP")
        netns_exec(node, "iptables", "-w", "-I", "INPUT", "-j", TEST_CHAIN)
        netns_exec(node, "iptables", "-w", "-I", "OUTPUT", "-j", TEST_CHAIN)


def heal(nodes: list[str]) -> None:
    for node in nodes:
        for hook in ("INPUT", "OUTPUT"):
            netns_exec(node, "iptables", "-w", "-D", hook, "-j", TEST_CHAIN,
                       check=False)
        netns_exec(node, "iptables", "-w", "-F", TEST_CHAIN, check=False)
        netns_exec(node, "iptables", "-w", "-X", TEST_CHAIN, check=False)
