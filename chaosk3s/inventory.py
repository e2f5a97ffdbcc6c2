"""The target of an experiment: `lab` or an inventory YAML of a cluster.

An inventory names the cluster (its name and kube-system UID, which the
cluster's own consent must match: chaosk3s.consent), how to reach the
Kubernetes API (kubeconfig and contexts), how to reach each node
(transport per node, per role or by default), which commands restart,
stop, start or reboot K3s on it, and how much of each role a run may
fault at once (blast_radius: chaosk3s.blast). Its schema is
chaosk3s.inventory_schema.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

from chaosk3s import names
from chaosk3s.blast import Caps
from chaosk3s.errors import LabStateError, SpecError
from chaosk3s.inventory_schema import InventorySpec
from chaosk3s.model import Access
from chaosk3s.namedlabs import lab_name_from_env, lab_of_target
from chaosk3s.schema import load_yaml, validate

LAB = "lab"
_ETCD_TLS = "/var/lib/rancher/k3s/server/tls/etcd"
# What the node says about its K3s unit and its boot: read before and
# after every node action, so an action proves its effect.
_SHOW = "systemctl show -p MainPID,ActiveState,ActiveEnterTimestampMonotonic"
_BOOT_ID = "cat /proc/sys/kernel/random/boot_id"
# The unit's journal in a window, for the report's log excerpts
# (chaosk3s.node_logs): {since} and {until} become seconds since the
# epoch, which systemd.time(7) reads as `@SECONDS`, free of time zones.
_JOURNAL = ("journalctl --no-pager --quiet --utc --output=short-iso-precise "
            "--since=@{since} --until=@{until} -u")
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
                   f"client.key https://127.0.0.1:2379/health"),
               # one API request the node's own way (probes.api_latency):
               # any HTTP answer, 401 included, is the API answering
               "api_request": "curl -sk -o /dev/null --max-time 10 "
                              "https://127.0.0.1:6443/readyz",
               "logs": f"{_JOURNAL} k3s"},
    "agents": {"restart": "systemctl restart k3s-agent",
              "stop": "systemctl stop k3s-agent",
              "start": "systemctl start k3s-agent",
              "reboot": "systemctl reboot",
              "status": f"{_SHOW} k3s-agent", "boot_id": _BOOT_ID,
              # through the agent's load balancer (127.0.0.1:6444)
              "api_request": "curl -sk -o /dev/null --max-time 10 "
                             "https://127.0.0.1:6444/readyz",
              "logs": f"{_JOURNAL} k3s-agent"},
}
# What a command must contain, and why: the node's logs are read only
# in the window around a transition; an upgrade installs the release the
# action names (there is no default `upgrade` command: how K3s was
# installed, and with which options, is the cluster's own).
_PLACEHOLDERS = {
    "logs": (("{since}", "{until}"), "whole seconds since the epoch, e.g. "
             "journalctl --since=@{since} --until=@{until}, so that only "
             "the window around a transition is read"),
    "upgrade": (("{version}",), "the K3s release to install, e.g. curl "
                "-sfL https://get.k3s.io | INSTALL_K3S_VERSION={version} "
                "sh -s - with the options K3s was installed with"),
}
# An etcd-only server has no API server of its own: like an agent, it
# reaches one through its load balancer.
_ROLE_DEFAULTS = {"etcd": {"api_request": DEFAULT_COMMANDS["agents"][
    "api_request"]}}
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
    cluster_uid: str | None = None  # kube-system's UID (chaosk3s.consent)
    caps: Caps = field(default_factory=lambda: Caps.of(None))

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
        return {**DEFAULT_COMMANDS[kind], **_ROLE_DEFAULTS.get(role, {}),
                **self.commands.get(kind, {}),
                **self.commands.get(f"role:{role}", {})}


def lab_inventory_path(name: str = "default") -> Path:
    """The inventory of lab name (chaosk3s.lab.state)."""
    from chaosk3s.lab.state import LabState  # the lab is optional here
    state = LabState(name=name)
    if not state.inventory.exists():
        called, option = ("", "") if state.names.is_default else (
            f" {name}", f" --name {name}")
        raise LabStateError(
            f"target is '{state.names.target}' but no lab{called} is up "
            f"({state.inventory} is missing); run `chaosk3s lab up{option}`"
            f", or let the chaosk3s control start one")
    return state.inventory


def load_target(target: str | None) -> Inventory:
    """`lab:N` (lab N's own inventory; chaosk3s.namedlabs), `lab` (the
    lab $CHAOSK3S_LAB_NAME names, else the default lab's) or an
    inventory path."""
    target = target or LAB
    lab = lab_name_from_env() if target == LAB else lab_of_target(target)
    path = lab_inventory_path(lab) if lab else Path(
        os.path.expanduser(target))
    if lab is None and not path.is_file():
        raise SpecError(f"cannot read inventory {path}: no such file; the "
                        f"target is 'lab' or an inventory YAML path")
    return parse_inventory(load_yaml(path, f"inventory {path}"), str(path))


def parse_inventory(raw: object, source: str) -> Inventory:
    """The inventory, checked against its schema first (one line per
    problem, every problem at once; chaosk3s.inventory_schema)."""
    given = validate(InventorySpec, raw, f"inventory {source}").plain()
    cluster = given["cluster"]
    contexts = given.get("contexts") or [given.get("context")]
    allowed = given.get("allowed_clusters") or [cluster]
    defaults = given.get("defaults", {}).get("transport")
    roles = given.get("roles", {})
    nodes = {}
    for item in given.get("nodes", []):
        entry = _node_entry(item, defaults, roles, source)
        nodes[entry.name] = entry
    commands = _commands(given.get("commands", {}), roles, source)
    kubeconfig = given.get("kubeconfig")
    return Inventory(
        cluster=cluster, source=source,
        kubeconfig=os.path.expanduser(kubeconfig) if kubeconfig else None,
        contexts=tuple(contexts), allowed_clusters=tuple(allowed),
        nodes=nodes, commands=commands,
        cluster_uid=given.get("cluster_uid"),
        caps=Caps.of(given.get("blast_radius")))


def _commands(top: dict, roles: dict, source: str) -> dict:
    """{"servers"|"agents"|"role:<role>": {action: shell command}}."""
    commands = {group: dict(given) for group, given in top.items()}
    for role, spec in roles.items():
        commands[f"role:{role}"] = dict(spec.get("commands", {}))
    for group, given in commands.items():
        for action, (needs, example) in _PLACEHOLDERS.items():
            command = given.get(action)
            if command is None or all(n in command for n in needs):
                continue
            where = f"roles.{group[5:]}.commands" if group.startswith(
                "role:") else f"commands.{group}"
            raise SpecError(
                f"inventory {source}: {where}.{action} must contain "
                f"{' and '.join(needs)} ({example})")
    return commands


def _node_entry(item: dict, defaults: dict | None, roles: dict,
                source: str) -> NodeEntry:
    role = item.get("role")
    role_transport = roles.get(role, {}).get("transport") if role else None
    merged = {**(defaults or {}), **(role_transport or {}),
              **item.get("transport", {})}
    return NodeEntry(name=item["name"], role=role,
                     address=item.get("address"),
                     join_server=item.get("join_server"),
                     access=_access(merged, item, source))


def _access(spec: dict, item: dict, source: str) -> Access:
    """The node's transport as merged from defaults, role and node: what
    the schema cannot check key by key."""
    name = item["name"]
    kind = spec.get("type")
    if kind is None:
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
    ssh's command line (chaosk3s.names); the schema checked the types
    and the choices (host_key_checking, become)."""
    key, known = spec.get("key_file"), spec.get("known_hosts")
    jump = spec.get("jump")
    if jump is not None:
        from chaosk3s.transports.ssh import parse_jump  # transports import us
        jump_user, jump_host, _port = parse_jump(str(jump), "root")
        names.ssh_user(jump_user, f"{where}: jump")
        names.ssh_host(jump_host, f"{where}: jump")
    return Access(
        transport="ssh", host=names.ssh_host(host, where),
        port=spec.get("port", 22),
        user=names.ssh_user(spec.get("user", "root"), where),
        key_file=names.ssh_path(os.path.expanduser(key), where, "key_file")
        if key else None,
        jump=jump, options=_options(spec.get("options", {}), where),
        known_hosts=names.ssh_path(os.path.expanduser(known), where,
                                   "known_hosts") if known else None,
        host_key_checking=spec.get("host_key_checking", "strict"),
        become=spec.get("become"))


def _options(given: dict, where: str) -> tuple[tuple[str, str], ...]:
    pairs = sorted(names.ssh_option(k, _option(v), where)
                   for k, v in given.items())
    for key, _value in pairs:
        if key.lower() in _HOST_KEY_OPTIONS:
            raise SpecError(
                f"{where}: ssh option {key} is not taken from `options`; "
                f"give the file as `known_hosts: PATH` and, only if you "
                f"mean to trust new hosts on first use, "
                f"`host_key_checking: accept-new`")
    return tuple(pairs)


def _option(value: str | int | bool) -> str:
    """An ssh_config value as ssh reads it (yes/no, not True/False)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
