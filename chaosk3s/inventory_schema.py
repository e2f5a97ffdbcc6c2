"""The inventory's schema: what each key may hold (see chaosk3s.schema).

What the schema cannot say alone is checked after it, in
chaosk3s.inventory: a node's transport as merged from `defaults`, its
role and itself must have a type, a netns one a namespace, an ssh one a
host.
"""

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, create_model, model_validator

from chaosk3s import names
from chaosk3s.model import ROLES
from chaosk3s.schema import NonEmpty, Port, Strict

COMMANDS = ("restart", "stop", "start", "reboot", "status", "boot_id",
            "serving", "etcd_health", "api_request", "logs", "upgrade")

# Every command is a shell command run on the node; {node} is its name
# (and in `logs`, {since} and {until} are seconds since the epoch; in
# `upgrade`, {version} is the K3s release to install).
CommandSet = create_model("CommandSet", __base__=Strict, **{
    name: (NonEmpty, None) for name in COMMANDS})


class TransportSpec(Strict):
    type: Literal["netns", "ssh"] = None
    namespace: NonEmpty = None
    host: NonEmpty = None
    port: Port = None
    user: NonEmpty = None
    key_file: NonEmpty = None
    jump: NonEmpty = None
    options: dict[NonEmpty, str | int | bool] = None
    known_hosts: NonEmpty = None  # host keys checked against this file
    # strict (default): only keys in known_hosts; accept-new: trust a
    # new host on first use
    host_key_checking: Literal["strict", "accept-new"] = None
    become: Literal["sudo"] = None  # commands run through `sudo -n`


class Defaults(Strict):
    transport: TransportSpec = None


class Commands(Strict):
    servers: CommandSet = None
    agents: CommandSet = None


class RoleSpec(Strict):
    transport: TransportSpec = None
    commands: CommandSet = None


# roles: {etcd: ..., control-plane: ..., server: ..., agent: ...}
Roles = create_model("Roles", __base__=Strict, **{
    role.replace("-", "_"): (RoleSpec, Field(None, alias=role))
    for role in ROLES})


def _node_name(name: str) -> str:
    # A node name becomes part of commands and file names: one check,
    # chaosk3s.names's, reported the way pydantic reports (ValueError).
    problem = names.node_name_problem(name)
    if problem:
        raise ValueError(problem)
    return name


NodeName = Annotated[str, AfterValidator(_node_name)]


class NodeSpec(Strict):
    name: NodeName
    role: Literal[ROLES] = None
    address: NonEmpty = None
    # null: the node joined through no server (it ran cluster-init)
    join_server: NodeName | None = None
    transport: TransportSpec = None


def _cap(value: object) -> int | str:
    """A number of nodes (0 or more) or a share of a role, "50%"."""
    if isinstance(value, int) and not isinstance(value, bool) and \
            value >= 0:
        return value
    if isinstance(value, str) and _SHARE.fullmatch(value.strip()) and \
            float(value.strip()[:-1]) <= 100:
        return value.strip()
    shown = "a list" if isinstance(value, list) else "a mapping" if \
        isinstance(value, dict) else repr(value)
    raise ValueError(f"must be a number of nodes (0 or more) or a share "
                     f"of the role such as 50% (at most 100%), not {shown}")


_SHARE = re.compile(r"\d+(\.\d+)?%")
CapValue = Annotated[object, AfterValidator(_cap)]

# blast_radius.per_fault / per_run: {default: 50%, agent: 2, ...}
CapSet = create_model("CapSet", __base__=Strict, default=(CapValue, None),
                      **{role.replace("-", "_"): (CapValue, Field(
                          None, alias=role)) for role in ROLES})


class BlastRadius(Strict):
    per_fault: CapSet = None
    per_run: CapSet = None


class InventorySpec(Strict):
    cluster: NonEmpty
    # the UID of the cluster's kube-system namespace (chaosk3s.consent)
    cluster_uid: NonEmpty = None
    allowed_clusters: Annotated[list[NonEmpty], Field(min_length=1)] = None
    kubeconfig: NonEmpty = None
    context: NonEmpty = None
    contexts: Annotated[list[NonEmpty], Field(min_length=1)] = None
    k3s_version: NonEmpty = None  # written by the lab; informational
    defaults: Defaults = None
    commands: Commands = None
    roles: Roles = None
    nodes: list[NodeSpec] = None
    blast_radius: BlastRadius = None  # chaosk3s.blast

    @model_validator(mode="after")
    def _unique_names(self) -> "InventorySpec":
        seen: set[str] = set()
        for node in self.nodes or []:
            if node.name in seen:
                raise ValueError(f"node {node.name!r} is listed twice "
                                 f"under nodes")
            seen.add(node.name)
        return self

    def plain(self) -> dict:
        """The keys given, as YAML wrote them (None: not given)."""
        return self.model_dump(by_alias=True, exclude_none=True)
