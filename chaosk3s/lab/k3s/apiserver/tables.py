"""meta.k8s.io/v1 Table responses: the columns kubectl prints.

kubectl asks for ``as=Table`` and prints the cells it gets back, so the
server decides what ``kubectl get nodes [-o wide]`` shows, as in
Kubernetes' own printers.
"""

import time
from datetime import UTC, datetime

from chaosk3s.lab.k3s.apiserver.cache import Entry
from chaosk3s.lab.k3s.apiserver.resources import NODES, Resource
from chaosk3s.lab.k3s.objects import READY, RFC3339, condition

ROLE_PREFIX = "node-role.kubernetes.io/"
_NODE_COLUMNS = [
    ("Name", "string", "name", 0), ("Status", "string", "", 0),
    ("Roles", "string", "", 0), ("Age", "string", "", 0),
    ("Version", "string", "", 0), ("Internal-IP", "string", "", 1),
    ("External-IP", "string", "", 1), ("OS-Image", "string", "", 1),
    ("Kernel-Version", "string", "", 1),
    ("Container-Runtime", "string", "", 1),
]
_DEFAULT_COLUMNS = [("Name", "string", "name", 0), ("Age", "string", "", 0)]


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def human_duration(seconds: float) -> str:
    """Kubernetes' duration.HumanDuration, as in the AGE column."""
    s = int(seconds)
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if h < 24 * 365 * 2:
        return f"{d}d"
    y = d // 365
    return f"{y}y{d % 365}d" if h < 24 * 365 * 8 and d % 365 else f"{y}y"


def born(obj: dict) -> float | None:
    """The creationTimestamp in epoch seconds, None if there is none."""
    stamp = obj.get("metadata", {}).get("creationTimestamp")
    if not stamp:
        return None
    return datetime.strptime(stamp, RFC3339).replace(
        tzinfo=UTC).timestamp()


def age(since: float | None, now: float) -> str:
    return "<unknown>" if since is None else human_duration(now - since)


def node_status(node: dict) -> str:
    ready = condition(node, READY)
    status = ["Ready" if ready and ready.get("status") == "True"
              else "NotReady" if ready else "Unknown"]
    if node.get("spec", {}).get("unschedulable"):
        status.append("SchedulingDisabled")
    return ",".join(status)


def node_roles(node: dict) -> str:
    labels = node.get("metadata", {}).get("labels") or {}
    roles = sorted({k[len(ROLE_PREFIX):] for k in labels
                    if k.startswith(ROLE_PREFIX) and k[len(ROLE_PREFIX):]})
    roles += sorted({v for k, v in labels.items()
                     if k == "kubernetes.io/role" and v} - set(roles))
    return ",".join(sorted(roles)) or "<none>"


def _address(node: dict, kind: str) -> str:
    for address in node.get("status", {}).get("addresses") or []:
        if address.get("type") == kind:
            return address.get("address", "")
    return "<none>"


def node_cells(node: dict) -> list:
    """The row with None for its Age, which changes with time."""
    info = node.get("status", {}).get("nodeInfo") or {}
    return [node["metadata"]["name"], node_status(node), node_roles(node),
            None, info.get("kubeletVersion", ""),
            _address(node, "InternalIP"), _address(node, "ExternalIP"),
            info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def _row_parts(res: Resource, entry: Entry) -> tuple[list, float | None,
                                                     dict]:
    """(cells without Age, creation time, metadata), parsed once per
    version of the object: a Table of 5,000 unchanged Nodes decodes none."""
    if "row" not in entry.derived:
        obj = entry.object()
        cells = (node_cells(obj) if res is NODES
                 else [obj["metadata"]["name"], None])
        entry.derived["row"] = (cells, born(obj), obj.get("metadata", {}))
    return entry.derived["row"]


def table(res: Resource, entries: list[Entry], resource_version: str,
          api_version: str = "meta.k8s.io/v1",
          include_object: str = "Metadata") -> dict:
    """A meta.k8s.io Table; includeObject=None leaves the rows' objects
    out, as the real API server does."""
    columns = _NODE_COLUMNS if res is NODES else _DEFAULT_COLUMNS
    age_cell = [name for name, *_ in columns].index("Age")
    now, rows = time.time(), []
    for entry in entries:
        cells, since, metadata = _row_parts(res, entry)
        cells = [*cells[:age_cell], age(since, now), *cells[age_cell + 1:]]
        row = {"cells": cells}
        if include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata",
                             "apiVersion": api_version,
                             "metadata": metadata}
        rows.append(row)
    return {"kind": "Table", "apiVersion": api_version,
            "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": [
                {"name": name, "type": kind, "format": fmt,
                 "description": name, "priority": priority}
                for name, kind, fmt, priority in columns],
            "rows": rows}
