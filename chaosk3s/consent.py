"""The cluster's own say: consent to chaos and its abort switch.

A cluster agrees to chaos from chaosk3s through a ConfigMap that its
admin creates with `chaosk3s consent` (the lab creates its own):

    kube-system/chaosk3s-consent
      data:
        cluster:    prod-east      # the inventory's `cluster`
        uid:        <the UID of this cluster's kube-system namespace>
        granted-by: alice@laptop
        granted-at: 2026-01-07T10:00:00+00:00
        abort:      '{"by": ..., "at": ..., "reason": ...}'  # when set

Before anything is injected, a run reads, through the inventory's own
kubeconfig and contexts: the kube-system namespace's UID, which must be
the inventory's `cluster_uid` (the API reached is the cluster the
inventory describes, not whatever the current context points at); and
the ConfigMap, which must exist, name the inventory's `cluster` and
carry that same UID (a copy from another cluster does not count), with
no `abort` key. The namespace UID is what Kubernetes gives each object
once, at creation (ObjectMeta.uid); kube-system exists for a cluster's
whole life, so its UID names the cluster.

`chaosk3s abort` writes the `abort` key; every running chaosk3s control
against that cluster polls the ConfigMap (chaosk3s.abort), heals and
stops. Withdrawing consent (`chaosk3s consent --withdraw`) stops them the
same way.
"""

import getpass
import json
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

from chaosk3s.errors import KubeError, KubeRejected, NotConsented, SpecError
from chaosk3s.inventory import Inventory
from chaosk3s.kube import Kube, config_map

NAMESPACE = "kube-system"
NAME = "chaosk3s-consent"
API_TIMEOUT = 5  # seconds per API call; an outage is an answer too
_WRITE_RETRIES = 5  # a concurrent writer changed the ConfigMap meanwhile


@dataclass(frozen=True)
class Consent:
    """What the cluster's ConfigMap says."""

    cluster: str
    uid: str
    granted_by: str
    granted_at: str
    abort: dict | None  # {"by", "at", "reason"} while the switch is set


def who() -> str:
    """user@host of this process, as consent and abort record it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def cluster_uid(kube: Kube) -> str:
    """The UID of the cluster's kube-system namespace."""
    namespace = kube.call("read_namespace", API_TIMEOUT, name=NAMESPACE)
    uid = (namespace.get("metadata") or {}).get("uid")
    if not uid:
        raise KubeRejected(500, "NoUID", "the kube-system namespace has "
                                         "no metadata.uid")
    return str(uid)


def _parse(config_map: dict) -> Consent:
    data = config_map.get("data") or {}
    try:
        abort = json.loads(data["abort"]) if data.get("abort") else None
    except ValueError:  # written by hand: still a set switch
        abort = {"by": "unknown", "at": "", "reason": str(data["abort"])}
    if abort is not None and not isinstance(abort, dict):
        abort = {"by": "unknown", "at": "", "reason": str(abort)}
    return Consent(cluster=str(data.get("cluster", "")),
                   uid=str(data.get("uid", "")),
                   granted_by=str(data.get("granted-by", "")),
                   granted_at=str(data.get("granted-at", "")), abort=abort)


def _read_raw(kube: Kube, timeout: float | tuple = API_TIMEOUT
              ) -> dict | None:
    try:
        return kube.call("read_namespaced_config_map", timeout,
                         name=NAME, namespace=NAMESPACE)
    except KubeRejected as exc:
        if exc.status == 404:
            return None
        raise


def read_consent(kube: Kube, timeout: float | tuple = API_TIMEOUT
                 ) -> Consent | None:
    """The cluster's consent, or None when it has given none."""
    raw = _read_raw(kube, timeout)
    return None if raw is None else _parse(raw)


def _change(kube: Kube, change) -> dict:
    """Read, change(data) -> data, write back only if nobody wrote in
    between (resourceVersion); retried a few times on a conflict."""
    for _ in range(_WRITE_RETRIES):
        raw = _read_raw(kube)
        if raw is None:
            raise NotConsented(f"the cluster has no ConfigMap {NAMESPACE}/"
                               f"{NAME}: it has not consented to chaos "
                               f"(`chaosk3s consent` grants it)")
        data = change(dict(raw.get("data") or {}))
        try:
            return kube.call("replace_namespaced_config_map", API_TIMEOUT,
                             name=NAME, namespace=NAMESPACE,
                             body=config_map(NAMESPACE, NAME, data, raw[
                                 "metadata"].get("resourceVersion")))
        except KubeRejected as exc:
            if exc.status != 409:
                raise
    raise KubeRejected(409, "Conflict", f"{NAMESPACE}/{NAME} kept changing "
                                        f"while chaosk3s wrote it; try again")


def grant(kube: Kube, cluster: str, by: str | None = None) -> Consent:
    """Consent of the cluster the API belongs to, as `cluster` (kept: an
    abort switch that is set stays set)."""
    uid = cluster_uid(kube)
    data = {"cluster": cluster, "uid": uid, "granted-by": by or who(),
            "granted-at": now()}
    if _read_raw(kube) is None:
        try:
            kube.call("create_namespaced_config_map", API_TIMEOUT,
                      namespace=NAMESPACE,
                      body=config_map(NAMESPACE, NAME, data))
            return _parse(config_map(NAMESPACE, NAME, data))
        except KubeRejected as exc:
            if exc.status != 409:  # created meanwhile: update it below
                raise
    kept = _change(kube, lambda old: {**data, **(
        {"abort": old["abort"]} if old.get("abort") else {})})
    return _parse(kept)


def withdraw(kube: Kube) -> bool:
    """Remove the consent; False if there was none."""
    try:
        kube.call("delete_namespaced_config_map", API_TIMEOUT, name=NAME,
                  namespace=NAMESPACE)
    except KubeRejected as exc:
        if exc.status == 404:
            return False
        raise
    return True


def set_abort(kube: Kube, by: str | None = None, reason: str = "") -> dict:
    """Set the abort switch: every run against the cluster heals and
    stops, and none starts until it is cleared."""
    switch = {"by": by or who(), "at": now(), "reason": reason}
    _change(kube, lambda data: {**data, "abort": json.dumps(switch)})
    return switch


def clear_abort(kube: Kube) -> bool:
    """Clear the abort switch; False if it was not set."""
    was = read_consent(kube)
    if was is None or was.abort is None:
        return False
    _change(kube, lambda data: {k: v for k, v in data.items()
                                if k != "abort"})
    return True


def describe_abort(abort: dict) -> str:
    reason = f": {abort['reason']}" if abort.get("reason") else ""
    return f"by {abort.get('by') or 'unknown'} at {abort.get('at') or '?'}" \
           f"{reason}"


# -- the check before a run ---------------------------------------------------
def check(inventory: Inventory, kube: Kube) -> Consent:
    """The cluster's consent to this inventory's runs, or NotConsented
    saying what is missing and who can fix it; nothing is changed."""
    where = f"inventory {inventory.source}"
    if inventory.cluster not in inventory.allowed_clusters:
        raise NotConsented(
            f"cluster {inventory.cluster!r} is not on the allowed list "
            f"({', '.join(inventory.allowed_clusters)}) of {where}; add it "
            f"to allowed_clusters to run chaos against it")
    try:
        uid = cluster_uid(kube)
        consent = read_consent(kube)
    except KubeError as exc:
        raise NotConsented(
            f"cannot check that cluster {inventory.cluster!r} consents to "
            f"chaos: {exc}; nothing was changed") from exc
    _check_identity(inventory, uid, where)
    _check_record(inventory, consent, uid, where)
    return consent


def _check_identity(inventory: Inventory, uid: str, where: str) -> None:
    if not inventory.cluster_uid:
        raise NotConsented(
            f"{where} names no cluster_uid, so chaosk3s cannot tell that the "
            f"API it reaches is cluster {inventory.cluster!r}: run "
            f"`chaosk3s consent --target {inventory.source}` against that "
            f"cluster (as its admin) and add the cluster_uid it prints")
    if uid != inventory.cluster_uid:
        raise NotConsented(
            f"the API reached through {where}'s kubeconfig and contexts is "
            f"not cluster {inventory.cluster!r}: its kube-system namespace "
            f"has UID {uid}, the inventory says {inventory.cluster_uid}; "
            f"check kubeconfig and contexts (nothing was changed)")


def _check_record(inventory: Inventory, consent: Consent | None, uid: str,
                  where: str) -> None:
    grant_it = (f"a cluster admin grants it with `chaosk3s consent --target "
                f"{inventory.source}`")
    if consent is None:
        raise NotConsented(
            f"cluster {inventory.cluster!r} has not consented to chaos (no "
            f"ConfigMap {NAMESPACE}/{NAME}); {grant_it}")
    if consent.cluster != inventory.cluster:
        raise NotConsented(
            f"the consent in {NAMESPACE}/{NAME} is for cluster "
            f"{consent.cluster!r}, not {inventory.cluster!r} as {where} "
            f"says; {grant_it}")
    if consent.uid != uid:
        raise NotConsented(
            f"the consent in {NAMESPACE}/{NAME} was granted on another "
            f"cluster (UID {consent.uid}) and copied here; {grant_it}")
    if consent.abort is not None:
        raise NotConsented(
            f"the abort switch of cluster {inventory.cluster!r} is set "
            f"({describe_abort(consent.abort)}); nothing runs until it is "
            f"cleared: `chaosk3s abort --clear --target "
            f"{inventory.source}`")


def require_uid_matches(inventory: Inventory, uid: str) -> None:
    """For `chaosk3s consent`: refuse to grant consent to another
    cluster than the one the inventory already names."""
    if inventory.cluster_uid and inventory.cluster_uid != uid:
        raise SpecError(
            f"the API reached through inventory {inventory.source} has "
            f"kube-system UID {uid}, but the inventory's cluster_uid is "
            f"{inventory.cluster_uid}: is its kubeconfig the right one? "
            f"(remove cluster_uid to consent for this cluster anyway)")
