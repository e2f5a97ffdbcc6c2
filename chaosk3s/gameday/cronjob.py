"""Hand a plan's schedule to Kubernetes: a CronJob and what it needs.

One multi-document YAML: a Namespace, a ConfigMap with the plan and every
experiment (and inventory, and its known_hosts files) it references, a
ServiceAccount, RBAC with exactly what the probes and the Lease lock use,
and the CronJob (concurrencyPolicy Forbid, the plan's time zone,
startingDeadlineSeconds = the plan's catch-up allowance; the Job and pod
in chaosk3s.gameday.cronpod), with a PersistentVolumeClaim for its
evidence on request, or (and) a ConfigMap the runner writes each game
day's summary into (chaosk3s.gameday.summary_configmap), with a Role
that allows `get` and `update` of that one ConfigMap. Every document
is validated against the Kubernetes OpenAPI schema (kubernetes-validate,
strict) before writing.

Secret material never goes into that file or a ConfigMap: a file that
holds any (an experiment with a `secrets` block, a plan with webhooks or
secret-named vars, anything chaosk3s.redact would hide) goes into a
Secret, written to its own owner-only file (SECRET_SUFFIX) for the
operator to apply or hand to their secret store; the pod reads the
ConfigMap and the Secret as one directory (a projected volume).

In the pod the inventory loses its kubeconfig and contexts (chaosk3s then
uses the pod's service account, as kubectl does), its known_hosts files
come from the ConfigMap (host keys are public; a pod remembers nothing,
so every ssh node needs one, and accept-new is refused: it would trust
any key on every run), and its SSH key files point into a Secret mounted
from SSH_DIR. The keys never go into the exported files:
`ssh_secret_command` says how to create that Secret.
"""

import shlex
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import kubernetes_validate
import yaml

from chaosk3s.consent import NAME as CONSENT_NAME
from chaosk3s.consent import NAMESPACE as CONSENT_NAMESPACE
from chaosk3s.errors import SpecError
from chaosk3s.files import write_atomically
from chaosk3s.gameday import cronpod
from chaosk3s.gameday.cronpod import REPORTS_DIR
from chaosk3s.gameday.export import unit_name
from chaosk3s.gameday.lock import LEASE_NAME, LEASE_NAMESPACE
from chaosk3s.gameday.plan import Plan
from chaosk3s.gameday.podfiles import SSH_DIR, faulted_nodes, pod_files
from chaosk3s.gameday.schedule import ON_TIME

KUBERNETES_VERSION = "1.30.0"  # CronJob timeZone is GA from 1.27
DEFAULT_NAMESPACE = "chaosk3s"
SECRET_SUFFIX = ".secret.yaml"


@dataclass
class Export:
    """The documents to write, the Secret with the files that hold
    secret material (None if none does), and the kubectl command that
    makes the Secret of SSH keys (None if no key is named)."""

    documents: list[dict]
    secret: dict | None
    ssh_secret_command: str | None


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
        # the run's record on the nodes (chaosk3s.events)
        {"apiGroups": [""], "resources": ["events"],
         "verbs": ["list", "create"]},
        # the cluster's identity: kube-system's UID (chaosk3s.consent)
        {"apiGroups": [""], "resources": ["namespaces"],
         "resourceNames": [CONSENT_NAMESPACE], "verbs": ["get"]}]
    # `create` cannot be limited by name; get/update are, to the lock.
    lease_rules = [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": [LEASE_NAME], "verbs": ["get", "update"]},
        # the cluster's consent and abort switch: read, never written
        {"apiGroups": [""], "resources": ["configmaps"],
         "resourceNames": [CONSENT_NAME], "verbs": ["get"]}]
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


def _config_volume(name: str, with_secret: bool) -> dict:
    """The pod's CONFIG_DIR: the ConfigMap, and the Secret's files beside
    them when some hold secret material."""
    if not with_secret:
        return {"name": "plan", "configMap": {"name": name}}
    return {"name": "plan", "projected": {"defaultMode": 0o440, "sources": [
        {"configMap": {"name": name}},
        {"secret": {"name": f"{name}-files"}}]}}


def _summary_documents(name: str, namespace: str) -> list[dict]:
    """The empty ConfigMap the runner writes summaries into, and a Role
    with get and update on it alone (no create: `kubectl apply` makes
    it; an apply later leaves the runner's keys, which it never set)."""
    summary = summary_name(name)
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": _meta(summary, namespace), "rules": [
                {"apiGroups": [""], "resources": ["configmaps"],
                 "resourceNames": [summary], "verbs": ["get", "update"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1",
               "kind": "RoleBinding", "metadata": _meta(summary, namespace),
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                           "kind": "Role", "name": summary},
               "subjects": [{"kind": "ServiceAccount", "name": name,
                             "namespace": namespace}]}
    return [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": _meta(summary, namespace)}, role, binding]


def summary_name(name: str) -> str:
    return f"{name}-summary"


@dataclass
class PodOptions:
    """What the export adds to the pod: where the evidence goes (a claim
    name, None: an emptyDir; the summary ConfigMap as NAMESPACE/NAME,
    None: none), the Job's deadline (seconds) and the nodes it must not
    run on."""

    claim: str | None
    deadline: int
    avoid: list[str]
    summary: str | None = None


def _cronjob(plan: Plan, name: str, namespace: str, image: str,
             with_ssh: bool, with_secret: bool, options: PodOptions) -> dict:
    deadline = max(int(ON_TIME.total_seconds()),
                   plan.schedule.catch_up_minutes * 60)
    history = min(plan.retention.keep_runs or 3, 10)
    pod = {"serviceAccountName": name, "restartPolicy": "Never",
           "terminationGracePeriodSeconds": cronpod.TERMINATION_GRACE,
           "containers": [cronpod.container(image, with_ssh, SSH_DIR,
                                            options.summary)],
           "volumes": [_config_volume(name, with_secret),
                       cronpod.evidence_volume(options.claim)]}
    placement = cronpod.affinity(options.avoid)
    if placement:
        pod["affinity"] = placement
    if with_ssh:  # ssh refuses keys that others can read
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
            "jobTemplate": {"spec": {
                "backoffLimit": 0, "activeDeadlineSeconds": options.deadline,
                "template": {"metadata": {"labels": _meta(name, None)[
                    "labels"]}, "spec": pod}}}}}


def cronjob_documents(plan: Plan, namespace: str = DEFAULT_NAMESPACE,
                      image: str | None = None, pvc: str | None = None,
                      deadline_minutes: int | None = None,
                      summary: bool = False) -> Export:
    """The documents, the Secret of files holding secret material, and
    the command that makes the SSH key Secret they mount. pvc: the size
    of a claim for the evidence (None: an emptyDir); summary: a ConfigMap
    for each game day's summary."""
    name = unit_name(plan)
    public, secret, ssh_keys = pod_files(plan, REPORTS_DIR,
                                         keep_retention=pvc is not None)
    options = PodOptions(
        claim=f"{name}-evidence" if pvc else None,
        deadline=deadline_minutes * 60 if deadline_minutes else
        cronpod.default_deadline(len(plan.experiments)),
        avoid=faulted_nodes(plan),
        summary=f"{namespace}/{summary_name(name)}" if summary else None)
    claim = [cronpod.evidence_claim(name, namespace, pvc, _meta(
        options.claim, namespace))] if pvc else []
    claim += _summary_documents(name, namespace) if summary else []
    documents = [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": _meta(namespace, None)},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": _meta(name, namespace), "data": public},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": _meta(name, namespace)},
        *_rbac(name, namespace), *claim,
        _cronjob(plan, name, namespace, image or default_image(),
                 bool(ssh_keys), bool(secret), options)]
    secret_document = {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": _meta(f"{name}-files", namespace),
        "stringData": secret} if secret else None
    return Export(documents, secret_document,
                  _secret_command(name, namespace, ssh_keys))


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
                f"{exc.message}") from exc


def secret_path(path: Path) -> Path:
    """Where the Secret of an export to path is written."""
    return path.with_name(path.stem + SECRET_SUFFIX)


def write_cronjob(plan: Plan, path: Path,
                  namespace: str = DEFAULT_NAMESPACE,
                  image: str | None = None, pvc: str | None = None,
                  deadline_minutes: int | None = None,
                  summary: bool = False) -> Export:
    """Write the documents to path and, when some file holds secret
    material, its Secret to secret_path(path) (0600); nothing is written
    if a document fails the schema."""
    export = cronjob_documents(plan, namespace, image, pvc,
                               deadline_minutes, summary)
    secret = [export.secret] if export.secret else []
    validate_documents(export.documents + secret)
    write_atomically(path, yaml.dump_all(export.documents, Dumper=_Dumper,
                                         sort_keys=False))
    if export.secret:
        write_atomically(secret_path(path), yaml.dump_all(
            secret, Dumper=_Dumper, sort_keys=False))
    return export
