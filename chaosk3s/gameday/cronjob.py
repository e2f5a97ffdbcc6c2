"""Hand a plan's schedule to Kubernetes: a CronJob and what it needs.

One multi-document YAML: a Namespace, a ConfigMap with the plan and every
experiment (and inventory) it references, a ServiceAccount, RBAC with
exactly what the probes and the Lease lock use, and the CronJob
(concurrencyPolicy Forbid, the plan's time zone, startingDeadlineSeconds
= the plan's catch-up allowance). Every document is validated against the
Kubernetes OpenAPI schema (kubernetes-validate, strict) before writing.

In the pod the inventory loses its kubeconfig and contexts (chaosk3s then
uses the pod's service account, as kubectl does), and its SSH key files
point into a Secret mounted from SSH_DIR. The keys never go into the
exported file: `ssh_secret_command` says how to create that Secret.
"""

import os
import shlex
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import kubernetes_validate
import yaml

from chaosk3s.errors import SpecError
from chaosk3s.gameday.export import unit_name
from chaosk3s.gameday.lock import LEASE_NAME, LEASE_NAMESPACE
from chaosk3s.gameday.plan import Plan
from chaosk3s.gameday.runner import EXIT_SKIPPED
from chaosk3s.gameday.schedule import ON_TIME

KUBERNETES_VERSION = "1.30.0"  # CronJob timeZone is GA from 1.27
CONFIG_DIR = "/etc/chaosk3s/gameday"
SSH_DIR = "/etc/chaosk3s/ssh"
REPORTS_DIR = "/var/lib/chaosk3s/reports"
DEFAULT_NAMESPACE = "chaosk3s"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the files in the ConfigMap) as `|` blocks."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style)


_Dumper.add_representer(str, _text)


def default_image() -> str:
    try:
        return f"chaostoolkit-k3s:{version('chaostoolkit-k3s')}"
    except PackageNotFoundError:
        return "chaostoolkit-k3s:latest"


def _meta(name: str, namespace: str | None) -> dict:
    meta = {"name": name, "labels": {"app.kubernetes.io/name": "chaosk3s",
                                     "app.kubernetes.io/component":
                                     "gameday"}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _files(plan: Plan) -> tuple[dict[str, str], dict[str, str]]:
    """ConfigMap data (key → text, the plan rewritten to its keys) and
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
        data["inventory.yaml"], ssh_keys = _pod_inventory(Path(target))
        target = "inventory.yaml"
    raw = yaml.safe_load(plan.source.read_text())
    raw.update(target=target, experiments=experiments,
               report_dir=REPORTS_DIR)
    raw.pop("retention", None)  # the pod's reports die with it
    data["plan.yaml"] = yaml.safe_dump(raw, sort_keys=False)
    return data, ssh_keys


def _pod_inventory(path: Path) -> tuple[str, dict[str, str]]:
    """The inventory as the pod reads it, and its keys (Secret key →
    local path)."""
    raw = yaml.safe_load(path.read_text())
    for field in ("kubeconfig", "context", "contexts"):
        raw.pop(field, None)
    ssh_keys: dict[str, str] = {}
    transports = [(raw.get("defaults") or {}).get("transport"),
                  *((r or {}).get("transport")
                    for r in (raw.get("roles") or {}).values()),
                  *(n.get("transport") for n in raw.get("nodes") or [])]
    for transport in transports:
        if transport and transport.get("key_file"):
            local = os.path.expanduser(transport["key_file"])
            name = next((k for k, v in ssh_keys.items() if v == local),
                        f"key-{len(ssh_keys) + 1}")
            ssh_keys[name] = local
            transport["key_file"] = f"{SSH_DIR}/{name}"
    return yaml.safe_dump(raw, sort_keys=False), ssh_keys


def _secret_command(name: str, namespace: str,
                    ssh_keys: dict[str, str]) -> str | None:
    """The kubectl command that creates the Secret of SSH keys the
    CronJob mounts; None when the inventory names no key file."""
    if not ssh_keys:
        return None
    files = " ".join(f"--from-file={key}={shlex.quote(local)}"
                     for key, local in ssh_keys.items())
    return (f"kubectl -n {namespace} create secret generic {name}-ssh "
            f"{files}")


def _rbac(name: str, namespace: str) -> list[dict]:
    subject = [{"kind": "ServiceAccount", "name": name,
                "namespace": namespace}]
    cluster_rules = [
        {"apiGroups": [""], "resources": ["nodes"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]}]
    # `create` cannot be limited by name; get/update are, to the lock.
    lease_rules = [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": [LEASE_NAME], "verbs": ["get", "update"]}]
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": _meta(name, None), "rules": cluster_rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1",
         "kind": "ClusterRoleBinding", "metadata": _meta(name, None),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                     "kind": "ClusterRole", "name": name},
         "subjects": subject},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": _meta(name, LEASE_NAMESPACE), "rules": lease_rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": _meta(name, LEASE_NAMESPACE),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                     "kind": "Role", "name": name},
         "subjects": subject}]


def _job_script() -> str:
    # Outside the windows is a skip, not a failed Job.
    return (f"chaosk3s gameday run --only-in-window {CONFIG_DIR}/plan.yaml;"
            f" code=$?; if [ $code -eq {EXIT_SKIPPED} ]; then exit 0; fi; "
            f"exit $code")


def _cronjob(plan: Plan, name: str, namespace: str, image: str,
             with_ssh: bool) -> dict:
    deadline = max(int(ON_TIME.total_seconds()),
                   plan.schedule.catch_up_minutes * 60)
    history = min(plan.retention.keep_runs or 3, 10)
    container = {
        "name": "gameday", "image": image,
        "command": ["/bin/sh", "-c", _job_script()],
        "volumeMounts": [
            {"name": "plan", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "reports", "mountPath": REPORTS_DIR}]}
    pod = {"serviceAccountName": name, "restartPolicy": "Never",
           "containers": [container],
           "volumes": [{"name": "plan", "configMap": {"name": name}},
                       {"name": "reports", "emptyDir": {}}]}
    if with_ssh:  # ssh refuses keys that others can read
        container["volumeMounts"].append(
            {"name": "ssh", "mountPath": SSH_DIR, "readOnly": True})
        pod["volumes"].append({"name": "ssh", "secret": {
            "secretName": f"{name}-ssh", "defaultMode": 0o400}})
    return {
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": _meta(name, namespace),
        "spec": {
            "schedule": plan.schedule.cron,
            "timeZone": plan.schedule.timezone,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": deadline,
            "successfulJobsHistoryLimit": history,
            "failedJobsHistoryLimit": history,
            # A chaos run is never retried behind the operator's back.
            "jobTemplate": {"spec": {"backoffLimit": 0, "template": {
                "metadata": {"labels": _meta(name, None)["labels"]},
                "spec": pod}}}}}


def cronjob_documents(plan: Plan, namespace: str = DEFAULT_NAMESPACE,
                      image: str | None = None
                      ) -> tuple[list[dict], str | None]:
    """The documents, and the command that makes the SSH key Secret they
    mount (None when none is needed)."""
    name = unit_name(plan)
    data, ssh_keys = _files(plan)
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": _meta(namespace, None)},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": _meta(name, namespace), "data": data},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": _meta(name, namespace)},
        *_rbac(name, namespace),
        _cronjob(plan, name, namespace, image or default_image(),
                 bool(ssh_keys))], _secret_command(name, namespace, ssh_keys)


def validate_documents(documents: list[dict],
                       kubernetes: str = KUBERNETES_VERSION) -> None:
    """SpecError naming the object and field the schema rejects."""
    for document in documents:
        try:
            kubernetes_validate.validate(document, kubernetes, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(map(str, exc.path)) or "(top)"
            raise SpecError(
                f"{document.get('kind')} {document['metadata']['name']} "
                f"fails the Kubernetes {kubernetes} schema at {where}: "
                f"{exc.message}") from None


def write_cronjob(plan: Plan, path: Path,
                  namespace: str = DEFAULT_NAMESPACE,
                  image: str | None = None
                  ) -> tuple[list[dict], str | None]:
    documents, secret_command = cronjob_documents(plan, namespace, image)
    validate_documents(documents)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.dump_all(documents, Dumper=_Dumper,
                                  sort_keys=False))
    return documents, secret_command
