"""The target of an experiment: `lab` or an inventory YAML of a cluster.

An inventory names the cluster (checked against the allowed list), how to
reach the Kubernetes API (kubeconfig and contexts), and how to reach each
node (transport per node, per role or by default) and which commands
restart, stop, start or reboot K3s on it.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from chaosk3s import names
from chaosk3s.errors import LabStateError, SpecError
from chaosk3s.model import ROLES, Access

LAB = "lab"
_ETCD_TLS = "/var/lib/rancher/k3s/server/tls/etcd"
# What the node says about its K3s unit and its boot: read before and
# after every node action, so an action proves its effect.
_SHOW = "systemctl show -p MainPID,ActiveState,ActiveEnterTimestampMonotonic"
_BOOT_ID = "cat /proc/sys/kernel/random/boot_id"
DEFAULT_COMMANDS = {
    "servers": {"restart": "systemctl restart k3s",
               "stop": "systemctl stop k3s", "start": "systemctl start k3s",
               "reboot": "systemctl reboot",
               "status": f"{_SHOW} k3s", "boot_id": _BOOT_ID,
               # K3s answers /ping on its supervisor port without
               # credentials (pkg/server/router.go): the server serves.
               "serving": "curl -fksS --max-time 5 "
                          "https://127.0.0.1:6443/ping",
               "etcd_health": (
                   f"curl -sS --max-time 5 --cacert {_ETCD_TLS}/server-ca.crt"
                   f" --cert {_ETCD_TLS}/client.crt --key {_ETCD_TLS}/"
                   f"client.key https://127.0.0.1:2379/health")},
    "agents": {"restart": "systemctl restart k3s-agent",
              "stop": "systemctl stop k3s-agent",
              "start": "systemctl start k3s-agent",
              "reboot": "systemctl reboot",
              "status": f"{_SHOW} k3s-agent", "boot_id": _BOOT_ID},
}
COMMANDS = ("restart", "stop", "start", "reboot", "status", "boot_id",
            "serving", "etcd_health")
_TRANSPORT_KEYS = {"type", "namespace", "host", "port", "user", "key_file",
                   "jump", "options", "known_hosts", "host_key_checking",
                   "become"}
HOST_KEY_CHECKING = ("strict", "accept-new")
BECOME = ("sudo",)
# Host keys are the inventory's to say (known_hosts, host_key_checking),
# in one place: options may not weaken them behind its back.
_HOST_KEY_OPTIONS = {"stricthostkeychecking", "userknownhostsfile",
                     "globalknownhostsfile", "knownhostscommand"}


@dataclass(frozen=True)
class NodeEntry:
    name: str
    role: str | None
    address: str | None
    join_server: str | None
    access: Access


@dataclass(frozen=True)
class Inventory:
    cluster: str
    source: str
    kubeconfig: str | None
    contexts: tuple[str | None, ...]
    allowed_clusters: tuple[str, ...]
    nodes: dict[str, NodeEntry]
    commands: dict[str, dict[str, str]] = field(default_factory=dict)

    def command(self, role: str, action: str, node: str) -> str:
        """The shell command for action on a node of role: the defaults,
        then `commands.servers|agents`, then `roles.<role>.commands`.
        `{node}` becomes the node's name; every other character, shell
        `${VAR}`s included, reaches the node as written."""
        command = self.commands_for(role).get(action)
        if command is None:
            raise SpecError(
                f"inventory {self.source} has no {action!r} command for "
                f"role {role}; add commands.{role}.{action}")
        return command.replace("{node}", names.node_name(node))

    def commands_for(self, role: str) -> dict[str, str]:
        kind = "agents" if role == "agent" else "servers"
        return {**DEFAULT_COMMANDS[kind], **self.commands.get(kind, {}),
                **self.commands.get(f"role:{role}", {})}


def lab_inventory_path() -> Path:
    from chaosk3s.lab.state import LabState  # the lab is optional here
    state = LabState()
    if not state.inventory.exists():
        raise LabStateError(
            f"target is 'lab' but no lab is up ({state.inventory} is "
            f"missing); run `chaosk3s lab up`, or let the chaosk3s control "
            f"start one")
    return state.inventory


def load_target(target: str | None) -> Inventory:
    """`lab` (the running lab's own inventory) or an inventory path."""
    target = target or LAB
    path = lab_inventory_path() if target == LAB else Path(
        os.path.expanduser(target))
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(f"cannot read inventory {path}: {exc.strerror}; "
                        f"the target is 'lab' or an inventory YAML path"
                        ) from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"inventory {path} is not valid YAML: {exc}"
                        ) from exc
    return parse_inventory(raw, str(path))


def parse_inventory(raw: object, source: str) -> Inventory:
    if not isinstance(raw, dict):
        raise SpecError(f"inventory {source} must be a YAML mapping")
    cluster = raw.get("cluster")
    if not cluster:
        raise SpecError(f"inventory {source}: `cluster` (the cluster's "
                        f"name, checked against allowed_clusters) is "
                        f"required")
    contexts = raw.get("contexts") or [raw.get("context")]
    allowed = raw.get("allowed_clusters") or [cluster]
    defaults = raw.get("defaults", {}).get("transport")
    roles = raw.get("roles", {}) or {}
    nodes = {}
    for item in raw.get("nodes") or []:
        entry = _node_entry(item, defaults, roles, source)
        nodes[entry.name] = entry
    commands = _commands(raw.get("commands") or {}, roles, source)
    kubeconfig = raw.get("kubeconfig")
    return Inventory(
        cluster=str(cluster), source=source,
        kubeconfig=os.path.expanduser(kubeconfig) if kubeconfig else None,
        contexts=tuple(contexts), allowed_clusters=tuple(map(str, allowed)),
        nodes=nodes, commands=commands)


def _commands(top: dict, roles: dict, source: str) -> dict:
    """{"servers"|"agents"|"role:<role>": {action: shell command}}."""
    unknown_groups = set(top) - {"servers", "agents"}
    if unknown_groups:
        raise SpecError(f"inventory {source}: commands has unknown group(s) "
                        f"{sorted(unknown_groups)}; use servers and agents "
                        f"(or roles.<role>.commands)")
    commands = {group: dict(given or {}) for group, given in top.items()}
    for role, spec in roles.items():
        if role not in ROLES:
            raise SpecError(f"inventory {source}: unknown role {role!r} "
                            f"under roles; roles are {', '.join(ROLES)}")
        commands[f"role:{role}"] = dict((spec or {}).get("commands", {}))
    for group, given in commands.items():
        unknown = set(given) - set(COMMANDS)
        if unknown:
            raise SpecError(f"inventory {source}: {group} has unknown "
                            f"command(s) {sorted(unknown)}; known: "
                            f"{', '.join(COMMANDS)}")
    return commands


def _node_entry(item: object, defaults: dict | None, roles: dict,
                source: str) -> NodeEntry:
    if not isinstance(item, dict) or not item.get("name"):
        raise SpecError(f"inventory {source}: every node needs a name")
    role = item.get("role")
    if role is not None and role not in ROLES:
        raise SpecError(f"inventory {source}: node {item['name']} has "
                        f"unknown role {role!r}; roles are "
                        f"{', '.join(ROLES)}")
    role_transport = (roles.get(role) or {}).get("transport") if role else None
    merged = {**(defaults or {}), **(role_transport or {}),
              **(item.get("transport") or {})}
    return NodeEntry(name=names.node_name(item["name"], f"inventory "
                                          f"{source}: node"), role=role,
                     address=item.get("address"),
                     join_server=item.get("join_server"),
                     access=_access(merged, item, source))


def _access(spec: dict, item: dict, source: str) -> Access:
    name = item["name"]
    unknown = set(spec) - _TRANSPORT_KEYS
    if unknown:
        raise SpecError(f"inventory {source}: node {name}: unknown "
                        f"transport key(s) {sorted(unknown)}")
    kind = spec.get("type")
    if kind not in ("netns", "ssh"):
        raise SpecError(f"inventory {source}: node {name} needs a transport "
                        f"of type netns or ssh (per node, per role or in "
                        f"defaults.transport)")
    if kind == "netns" and not spec.get("namespace"):
        raise SpecError(f"inventory {source}: node {name}: a netns "
                        f"transport needs `namespace`")
    host = spec.get("host") or item.get("address")
    if kind == "netns":
        return Access(transport=kind, namespace=spec.get("namespace"),
                      host=host)
    if not host:
        raise SpecError(f"inventory {source}: node {name}: an ssh transport "
                        f"needs `host` (or the node's `address`)")
    return _ssh_access(spec, host, f"inventory {source}: node {name}")


def _ssh_access(spec: dict, host: str, where: str) -> Access:
    """An ssh Access whose every part is checked before it can reach
    ssh's command line (chaosk3s.names)."""
    key, known = spec.get("key_file"), spec.get("known_hosts")
    checking = spec.get("host_key_checking", "strict")
    if checking not in HOST_KEY_CHECKING:
        raise SpecError(f"{where}: host_key_checking {checking!r}; use "
                        f"strict (the default: only keys in known_hosts) or "
                        f"accept-new (trust a new host on first use)")
    become = spec.get("become")
    if become is not None and become not in BECOME:
        raise SpecError(f"{where}: become {become!r}; use sudo (commands "
                        f"run through `sudo -n`) or leave it out")
    jump = spec.get("jump")
    if jump is not None:
        from chaosk3s.transports.ssh import parse_jump  # transports import us
        jump_user, jump_host, _port = parse_jump(str(jump), "root")
        names.ssh_user(jump_user, f"{where}: jump")
        names.ssh_host(jump_host, f"{where}: jump")
    return Access(
        transport="ssh", host=names.ssh_host(host, where),
        port=int(spec.get("port", 22)),
        user=names.ssh_user(spec.get("user", "root"), where),
        key_file=names.ssh_path(os.path.expanduser(key), where, "key_file")
        if key else None,
        jump=str(jump) if jump is not None else None,
        options=_options(spec.get("options") or {}, where),
        known_hosts=names.ssh_path(os.path.expanduser(known), where,
                                   "known_hosts") if known else None,
        host_key_checking=checking, become=become)


def _options(given: object, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(given, dict):
        raise SpecError(f"{where}: options must be a mapping of ssh_config "
                        f"keywords to values")
    pairs = sorted(names.ssh_option(k, v, where) for k, v in given.items())
    for key, _value in pairs:
        if key.lower() in _HOST_KEY_OPTIONS:
            raise SpecError(
                f"{where}: ssh option {key} is not taken from `options`; "
                f"give the file as `known_hosts: PATH` and, only if you "
                f"mean to trust new hosts on first use, "
                f"`host_key_checking: accept-new`")
    return tuple(pairs)
