"""The files a game-day pod reads, split by whether they hold secrets.

The plan (rewritten to the pod's paths), each experiment, the inventory
(kubeconfig and contexts dropped: the pod uses its service account; key
files pointing into SSH_DIR; known_hosts files into CONFIG_DIR) and its
known_hosts files. A file that holds secret material (holds_secrets)
goes to the Secret, the others to the ConfigMap.
"""

import json
import os
from pathlib import Path

import yaml

from chaosk3s.errors import SpecError
from chaosk3s.gameday.plan import Plan
from chaosk3s.inventory import parse_inventory
from chaosk3s.redact import redact

CONFIG_DIR = "/etc/chaosk3s/gameday"
SSH_DIR = "/etc/chaosk3s/ssh"
# Inventory fields that name files, not secrets (redact would hide
# "key_file" for its name).
_PATH_FIELDS = ("key_file", "known_hosts")


def pod_files(plan: Plan, reports_dir: str, keep_retention: bool = False
              ) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(ConfigMap files, Secret files, SSH keys: Secret key → local
    path), files as key → text. keep_retention: the reports outlive the
    pod (a volume claim), so the plan's retention applies there."""
    files, ssh_keys = _files(plan, reports_dir, keep_retention)
    secret = {k: v for k, v in files.items() if holds_secrets(k, v)}
    public = {k: v for k, v in files.items() if k not in secret}
    return public, secret, ssh_keys


def faulted_nodes(plan: Plan) -> list[str]:
    """The nodes the plan's inventory names: those its experiments may
    fault (none for the lab, which is no cluster's)."""
    if plan.target == "lab":
        return []
    path = Path(plan.target)
    inventory = parse_inventory(yaml.safe_load(path.read_text()), str(path))
    return sorted(inventory.nodes)


def _files(plan: Plan, reports_dir: str, keep_retention: bool
           ) -> tuple[dict[str, str], dict[str, str]]:
    """The pod's files (key → text, the plan rewritten to its keys) and
    the SSH keys the pod needs (Secret key → local path)."""
    data, keys, experiments = {}, {}, []
    for index, experiment in enumerate(plan.experiments):
        key = keys.get(experiment.path)
        if key is None:
            key = f"{index + 1:02d}-{experiment.path.name}"
            keys[experiment.path] = key
            data[key] = experiment.path.read_text()
        experiments.append({"path": key, "vars": dict(experiment.vars)})
    target, ssh_keys = plan.target, {}
    if target != "lab":
        inventory, ssh_keys, known = _pod_inventory(Path(target))
        data.update(known, **{"inventory.yaml": inventory})
        target = "inventory.yaml"
    raw = yaml.safe_load(plan.source.read_text())
    raw.update(target=target, experiments=experiments,
               report_dir=reports_dir)
    if not keep_retention:
        raw.pop("retention", None)  # the pod's reports die with it
    data["plan.yaml"] = yaml.safe_dump(raw, sort_keys=False)
    return data, ssh_keys


def _transports(raw: dict) -> list[dict]:
    return [t for t in [(raw.get("defaults") or {}).get("transport"),
                        *((r or {}).get("transport")
                          for r in (raw.get("roles") or {}).values()),
                        *(n.get("transport") for n in raw.get("nodes") or [])]
            if t]


def _pod_inventory(path: Path
                   ) -> tuple[str, dict[str, str], dict[str, str]]:
    """The inventory as the pod reads it, its keys (Secret key → local
    path) and its known_hosts files (ConfigMap key → text)."""
    raw = yaml.safe_load(path.read_text())
    for field in ("kubeconfig", "context", "contexts"):
        raw.pop(field, None)
    ssh_keys: dict[str, str] = {}
    known: dict[str, str] = {}
    for transport in _transports(raw):
        if transport.get("key_file"):
            transport["key_file"] = _mounted(
                transport["key_file"], ssh_keys, "key", SSH_DIR)
        if transport.get("known_hosts"):
            local = os.path.expanduser(transport["known_hosts"])
            transport["known_hosts"] = _mounted(local, known, "known_hosts",
                                                CONFIG_DIR)
    _check_host_keys(raw, path)
    try:
        texts = {name: Path(local).read_text()
                 for name, local in known.items()}
    except OSError as exc:
        raise SpecError(f"inventory {path}: cannot read its known_hosts "
                        f"file {exc.filename}: {exc.strerror}") from None
    return yaml.safe_dump(raw, sort_keys=False), ssh_keys, texts


def _mounted(local: str, files: dict[str, str], prefix: str,
             directory: str) -> str:
    """Where the pod finds a local file: one name per distinct file."""
    local = os.path.expanduser(local)
    name = next((k for k, v in files.items() if v == local),
                f"{prefix}-{len(files) + 1}")
    files[name] = local
    return f"{directory}/{name}"


def _check_host_keys(raw: dict, path: Path) -> None:
    """A pod starts with no known host: every ssh node needs the
    inventory's known_hosts, and accept-new would trust any key."""
    inventory = parse_inventory(raw, str(path))
    for node in inventory.nodes.values():
        access = node.access
        if access.transport != "ssh":
            continue
        if access.host_key_checking == "accept-new":
            raise SpecError(
                f"inventory {path}: node {node.name} has host_key_checking:"
                f" accept-new, which in a CronJob pod (it remembers no "
                f"host) would accept any host key on every run; give its "
                f"host keys in a known_hosts file instead")
        if not access.known_hosts:
            raise SpecError(
                f"inventory {path}: node {node.name} has no known_hosts; a "
                f"CronJob pod has no host keys of its own, so every ssh "
                f"connection would be refused: add `known_hosts: PATH` "
                f"(for example to defaults.transport)")


def holds_secrets(key: str, text: str) -> bool:
    """True when a file of the pod holds secret material: what
    chaosk3s.redact would hide (an experiment's secrets block, a plan's
    webhooks, secret-named values, credentials in text)."""
    try:
        data = json.loads(text) if key.endswith(".json") else \
            yaml.safe_load(text)
    except (ValueError, yaml.YAMLError):
        data = text
    if key == "inventory.yaml" and isinstance(data, dict):
        for transport in _transports(data):
            for field in _PATH_FIELDS:
                transport.pop(field, None)
    return redact(data) != data
