"""The lab's network: one namespace per node, all on one host bridge.

Each node namespace has loopback, an ``eth0`` with the node's address and
no default route, so lab traffic can only reach the lab subnet. The host
owns ``.1`` on the bridge and so reaches every node directly.
"""

import ipaddress
import json

from chaosk3s.errors import EnvironmentProblem
from chaosk3s.lab.shell import require, run

NETNS_PREFIX = "ck3s-"
LINK_PREFIX = "ck3s"
BRIDGE = "ck3s-br0"


def netns_name(node: str) -> str:
    return NETNS_PREFIX + node


def host_veth(index: int) -> str:
    return f"{LINK_PREFIX}-v{index}"  # link names are limited to 15 chars


def check_subnet_free(subnet: str, key: str = "subnet") -> None:
    """Refuse a lab subnet (IPv4, or IPv6 for key subnet6) that overlaps
    any route or address of the host."""
    require("ip")
    lab = ipaddress.ip_network(subnet)
    routes = json.loads(run(["ip", "-j", f"-{lab.version}", "route", "show",
                             "table", "all"]).stdout or "[]")
    for route in routes:
        dst = route.get("dst", "default")
        if dst == "default" or route.get("dev") == BRIDGE:
            continue
        try:
            network = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        # loopback, and IPv6's multicast table (ff00::/8), never clash
        if network.overlaps(lab) and not network.is_loopback and \
                not network.is_multicast:
            raise EnvironmentProblem(
                f"lab {key} {subnet} overlaps the host route {dst} "
                f"(dev {route.get('dev', '?')}); choose another {key} in "
                f"the lab spec ({key}: ...)")


def create_bridge(host_cidr: str, host_cidr6: str | None = None) -> None:
    run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "addr", "add", host_cidr, "dev", BRIDGE])
    if host_cidr6:  # nodad: usable at once, no duplicate detection wait
        run(["ip", "-6", "addr", "add", host_cidr6, "dev", BRIDGE, "nodad"])
    run(["ip", "link", "set", BRIDGE, "up"])


def create_node_network(node: str, index: int, cidr: str,
                        cidr6: str | None = None) -> None:
    """Namespace + veth pair; the node side is created directly inside.
    With cidr6 the node is dual-stack (IPv6 on the same link)."""
    namespace, veth = netns_name(node), host_veth(index)
    run(["ip", "netns", "add", namespace])
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
         "netns", namespace])
    run(["ip", "link", "set", veth, "master", BRIDGE, "up"])
    ns = ["ip", "-n", namespace]
    run([*ns, "link", "set", "lo", "up"])
    run([*ns, "addr", "add", cidr, "dev", "eth0"])
    if cidr6:
        run([*ns, "-6", "addr", "add", cidr6, "dev", "eth0", "nodad"])
    run([*ns, "link", "set", "eth0", "up"])


def set_node_link(node: str, up: bool) -> None:
    """Take a node's eth0 down or up (a powered-off node does not answer)."""
    run(["ip", "-n", netns_name(node), "link", "set", "eth0",
         "up" if up else "down"])


def flush_node_iptables(node: str) -> None:
    """What a reboot does to non-persistent rules: every table emptied,
    IPv4 and (where the kernel filters it) IPv6."""
    require("iptables")
    tools = ["iptables"] + (["ip6tables"] if _has_ip6tables(node) else [])
    for tool in tools:
        for table in ("filter", "nat", "mangle", "raw"):
            for flag in ("-F", "-X"):
                run(["ip", "netns", "exec", netns_name(node), tool, "-w",
                     "-t", table, flag])
            for chain in _builtin_chains(table):
                run(["ip", "netns", "exec", netns_name(node), tool, "-w",
                     "-t", table, "-P", chain, "ACCEPT"])


def _has_ip6tables(node: str) -> bool:
    try:
        require("ip6tables")
    except EnvironmentProblem:
        return False
    return run(["ip", "netns", "exec", netns_name(node), "ip6tables", "-w",
                "-S"], check=False).returncode == 0


def _builtin_chains(table: str) -> tuple[str, ...]:
    return {"filter": ("INPUT", "FORWARD", "OUTPUT"),
            "nat": (), "raw": (),
            "mangle": ()}[table]


def list_lab_namespaces() -> list[str]:
    out = run(["ip", "-j", "netns", "list"], check=False).stdout or "[]"
    return sorted(item["name"] for item in json.loads(out)
                  if item["name"].startswith(NETNS_PREFIX))


def list_lab_links() -> list[str]:
    out = run(["ip", "-j", "link", "show"]).stdout or "[]"
    return sorted(item["ifname"] for item in json.loads(out)
                  if item["ifname"].startswith(LINK_PREFIX))


def namespace_pids(namespace: str) -> list[int]:
    out = run(["ip", "netns", "pids", namespace], check=False).stdout
    return [int(pid) for pid in out.split()]


def delete_namespace(namespace: str) -> None:
    run(["ip", "netns", "delete", namespace], check=False)


def delete_link(link: str) -> None:
    run(["ip", "link", "delete", link], check=False)
