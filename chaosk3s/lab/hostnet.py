"""The lab's network: one namespace per node, all on one host bridge.

Each node namespace has loopback, an ``eth0`` with the node's address and
no default route, so lab traffic can only reach the lab subnet. The host
owns ``.1`` on the bridge and so reaches every node directly. Names come
from the lab's name (chaosk3s.namedlabs), so every function here touches
one lab only.
"""

import ipaddress
import json

from chaosk3s.errors import EnvironmentProblem
from chaosk3s.lab.shell import require, run
from chaosk3s.namedlabs import LabNames, owner


def overlapping_route(subnet: str, own_bridge: str | None = None
                      ) -> str | None:
    """The first host route (or address) that overlaps subnet, as
    "DST (dev DEV)", or None; routes on own_bridge do not count."""
    require("ip")
    lab = ipaddress.ip_network(subnet)
    routes = json.loads(run(["ip", "-j", f"-{lab.version}", "route", "show",
                             "table", "all"]).stdout or "[]")
    for route in routes:
        dst = route.get("dst", "default")
        if dst == "default" or route.get("dev") == own_bridge:
            continue
        try:
            network = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        # loopback, and IPv6's multicast table (ff00::/8), never clash
        if network.overlaps(lab) and not network.is_loopback and \
                not network.is_multicast:
            return f"{dst} (dev {route.get('dev', '?')})"
    return None


def check_subnet_free(subnet: str, key: str = "subnet",
                      own_bridge: str | None = None) -> None:
    """Refuse a lab subnet (IPv4, or IPv6 for key subnet6) that overlaps
    any route or address of the host (another lab's bridge included)."""
    clash = overlapping_route(subnet, own_bridge)
    if clash:
        raise EnvironmentProblem(
            f"lab {key} {subnet} overlaps the host route {clash}; choose "
            f"another {key} in the lab spec ({key}: ...)")


def create_bridge(names: LabNames, host_cidr: str,
                  host_cidr6: str | None = None) -> None:
    bridge = names.bridge
    run(["ip", "link", "add", bridge, "type", "bridge"])
    run(["ip", "addr", "add", host_cidr, "dev", bridge])
    if host_cidr6:  # nodad: usable at once, no duplicate detection wait
        run(["ip", "-6", "addr", "add", host_cidr6, "dev", bridge, "nodad"])
    run(["ip", "link", "set", bridge, "up"])


def create_node_network(names: LabNames, node: str, index: int, cidr: str,
                        cidr6: str | None = None) -> None:
    """Namespace + veth pair; the node side is created directly inside.
    With cidr6 the node is dual-stack (IPv6 on the same link)."""
    namespace, veth = names.netns(node), names.veth(index)
    run(["ip", "netns", "add", namespace])
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
         "netns", namespace])
    run(["ip", "link", "set", veth, "master", names.bridge, "up"])
    ns = ["ip", "-n", namespace]
    run([*ns, "link", "set", "lo", "up"])
    run([*ns, "addr", "add", cidr, "dev", "eth0"])
    if cidr6:
        run([*ns, "-6", "addr", "add", cidr6, "dev", "eth0", "nodad"])
    run([*ns, "link", "set", "eth0", "up"])


def set_node_link(names: LabNames, node: str, up: bool) -> None:
    """Take a node's eth0 down or up (a powered-off node does not answer)."""
    run(["ip", "-n", names.netns(node), "link", "set", "eth0",
         "up" if up else "down"])


def flush_node_iptables(names: LabNames, node: str) -> None:
    """What a reboot does to non-persistent rules: every table emptied,
    IPv4 and (where the kernel filters it) IPv6."""
    require("iptables")
    namespace = names.netns(node)
    tools = ["iptables"] + (["ip6tables"] if _has_ip6tables(namespace)
                            else [])
    for tool in tools:
        for table in ("filter", "nat", "mangle", "raw"):
            for flag in ("-F", "-X"):
                run(["ip", "netns", "exec", namespace, tool, "-w",
                     "-t", table, flag])
            for chain in _builtin_chains(table):
                run(["ip", "netns", "exec", namespace, tool, "-w",
                     "-t", table, "-P", chain, "ACCEPT"])


def _has_ip6tables(namespace: str) -> bool:
    try:
        require("ip6tables")
    except EnvironmentProblem:
        return False
    return run(["ip", "netns", "exec", namespace, "ip6tables", "-w",
                "-S"], check=False).returncode == 0


def _builtin_chains(table: str) -> tuple[str, ...]:
    return {"filter": ("INPUT", "FORWARD", "OUTPUT"),
            "nat": (), "raw": (),
            "mangle": ()}[table]


def all_namespaces() -> list[str]:
    out = run(["ip", "-j", "netns", "list"], check=False).stdout or "[]"
    return sorted(item["name"] for item in json.loads(out))


def all_links() -> list[str]:
    out = run(["ip", "-j", "link", "show"]).stdout or "[]"
    return sorted(item["ifname"] for item in json.loads(out))


def list_lab_namespaces(names: LabNames) -> list[str]:
    """The namespaces of lab names (and of no other lab)."""
    return [ns for ns in all_namespaces() if names.owns(ns)]


def list_lab_links(names: LabNames) -> list[str]:
    """The host links (bridge, veths) of lab names, and of no other."""
    return [link for link in all_links() if names.owns(link)]


def labs_on_machine() -> dict[str, dict[str, list[str]]]:
    """Lab name -> {"namespaces": [...], "links": [...]}, for every lab
    that has any on this machine (whatever state dir it was made with)."""
    found: dict[str, dict[str, list[str]]] = {}
    for kind, items in (("namespaces", all_namespaces()),
                        ("links", all_links())):
        for item in items:
            name = owner(item)
            if name is not None:
                lab = found.setdefault(name, {"namespaces": [], "links": []})
                lab[kind].append(item)
    return found


def namespace_pids(namespace: str) -> list[int]:
    out = run(["ip", "netns", "pids", namespace], check=False).stdout
    return [int(pid) for pid in out.split()]


def delete_namespace(namespace: str) -> None:
    run(["ip", "netns", "delete", namespace], check=False)


def delete_link(link: str) -> None:
    run(["ip", "link", "delete", link], check=False)
