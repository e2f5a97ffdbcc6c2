"""Never two game days at once against one cluster.

Two locks, both taken before anything runs:

- a local file lock (fcntl) per cluster, so two runners on one machine
  (a timer and a person, say) exclude each other even without an API;
- a coordination.k8s.io/v1 Lease `kube-system/chaosk3s-gameday` in the
  target cluster, so runners on different machines exclude each other.
  It is taken with create or a compare-and-update on resourceVersion,
  renewed while the game day runs, and released at the end. A lease whose
  renewTime + leaseDurationSeconds has passed belongs to a dead runner
  and is taken over, once it has also stayed unchanged for one renewal
  interval measured on this machine: renewTime is the holder's clock, so
  a live holder whose clock runs behind ours is not mistaken for a dead
  one (client-go's leader election avoids the same trap the same way).

The lab exists only on this machine and, when its experiments start it
themselves, only during each experiment: the file lock is the whole lock
then; when a lab is already up, its API holds the Lease as well.
"""

import fcntl
import os
import re
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kubernetes import client

from chaosk3s.errors import (
    KubeError,
    KubeRejected,
    LabStateError,
    LockHeld,
    LockLost,
)
from chaosk3s.inventory import load_target
from chaosk3s.kube import Kube
from chaosk3s.namedlabs import LabNames, lab_name_from_env
from chaosk3s.report.values import parse_time

LEASE_NAME = "chaosk3s-gameday"
LEASE_NAMESPACE = "kube-system"
LEASE_SECONDS = 120  # a dead runner's lease is free after this
RENEW_SECONDS = LEASE_SECONDS // 4
API_TIMEOUT = 10
RETRY_SECONDS = 5  # between renewal attempts while the API is away
# How long a lease that looks expired must stay unchanged before it is
# taken over: a live holder renews within this.
CONFIRM_SECONDS = RENEW_SECONDS + RETRY_SECONDS


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_identity(plan_name: str) -> str:
    return (f"{socket.gethostname()}/{os.getpid()}/{plan_name}/"
            f"{uuid.uuid4().hex[:8]}")


def lock_dir() -> Path:
    """$CHAOSK3S_LOCK_DIR, /run/lock/chaosk3s for root, else the temp dir."""
    if os.environ.get("CHAOSK3S_LOCK_DIR"):
        return Path(os.environ["CHAOSK3S_LOCK_DIR"])
    if os.access("/run/lock", os.W_OK):
        return Path("/run/lock/chaosk3s")
    return Path(tempfile.gettempdir()) / "chaosk3s-locks"


class FileLock:
    """An exclusive, non-blocking flock; the holder's identity is written
    inside so a refusal can say who holds it. The kernel drops it when the
    holder dies, so it never goes stale."""

    def __init__(self, path: Path):
        self.path = path
        self._file = None

    def acquire(self, identity: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held until release
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise LockHeld(f"another game day holds the local lock "
                           f"{self.path} ({holder}); nothing was run"
                           ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(identity + "\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _micro(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_expiry(spec: dict) -> datetime | None:
    """When a lease's holder lost it unless renewed (None: never held)."""
    renewed = parse_time(spec.get("renewTime") or spec.get("acquireTime"))
    if not spec.get("holderIdentity") or renewed is None:
        return None
    return renewed + timedelta(seconds=spec.get("leaseDurationSeconds") or 0)


class LeaseLock:
    """The game-day Lease in one cluster, reached through a Kube."""

    def __init__(self, kube: Kube, identity: str,
                 duration: int = LEASE_SECONDS,
                 clock: Callable[[], datetime] = utc_now,
                 name: str = LEASE_NAME, namespace: str = LEASE_NAMESPACE,
                 sleep: Callable[[float], None] = time.sleep,
                 progress: Callable[[str], None] = lambda _message: None):
        self.kube, self.identity, self.duration = kube, identity, duration
        self.clock, self.name, self.namespace = clock, name, namespace
        self.sleep, self.progress = sleep, progress
        self.renewed: datetime | None = None

    def _call(self, method: str, **kwargs) -> dict:
        """A CoordinationV1Api call on the first context that answers."""
        return self.kube.call(method, API_TIMEOUT,
                              api=client.CoordinationV1Api,
                              namespace=self.namespace, **kwargs)

    def read(self) -> dict | None:
        try:
            return self._call("read_namespaced_lease", name=self.name)
        except KubeRejected as exc:
            if exc.status == 404:
                return None
            raise

    def _body(self, spec: dict, resource_version: str | None) -> dict:
        metadata = {"name": self.name, "namespace": self.namespace}
        if resource_version:
            metadata["resourceVersion"] = resource_version
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": metadata, "spec": spec}

    def _held_by_other(self, lease: dict) -> str | None:
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        expiry = lease_expiry(spec)
        if holder and holder != self.identity and expiry and \
                expiry > self.clock():
            return (f"{holder}, renewed {spec.get('renewTime')}, free at "
                    f"{_micro(expiry)} unless renewed")
        return None

    def acquire(self) -> None:
        """Create the lease, or take it over when free or stale."""
        now, lease = self.clock(), self.read()
        spec = {"holderIdentity": self.identity, "acquireTime": _micro(now),
                "renewTime": _micro(now), "leaseDurationSeconds":
                self.duration, "leaseTransitions": 0}
        try:
            if lease is None:
                self._call("create_namespaced_lease", body=self._body(
                    spec, None))
            else:
                holder = self._held_by_other(lease)
                if holder:
                    raise LockHeld(self._refusal(holder))
                lease = self._confirm_stale(lease)
                old = lease.get("spec") or {}
                changed = old.get("holderIdentity") != self.identity
                spec["leaseTransitions"] = (old.get("leaseTransitions")
                                            or 0) + int(changed)
                self._call("replace_namespaced_lease", name=self.name,
                           body=self._body(spec, lease["metadata"].get(
                               "resourceVersion")))
        except KubeRejected as exc:
            if exc.status != 409:
                raise
            # Created or updated by another runner since our read.
            raise LockHeld(self._refusal("another runner that took it at "
                                         "the same moment")) from exc
        self.renewed = now

    def _confirm_stale(self, lease: dict) -> dict:
        """A lease another runner holds that looks expired by our clock:
        taken over only if it stays unchanged for CONFIRM_SECONDS (or its
        duration, if shorter) of our own time; LockHeld if it is renewed
        meanwhile."""
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        if not holder or holder == self.identity:
            return lease  # released, or ours from an earlier life
        wait = min(CONFIRM_SECONDS, spec.get("leaseDurationSeconds") or 0)
        self.progress(f"the Lease {self.namespace}/{self.name} of {holder} "
                      f"looks expired (renewed {spec.get('renewTime')}); "
                      f"taking it over if nobody renews it in {wait} s")
        self.sleep(wait)
        again = self.read()
        version = lease["metadata"].get("resourceVersion")
        if again is not None and again["metadata"].get(
                "resourceVersion") != version:
            raise LockHeld(self._refusal(
                f"{holder}, which renewed it although it looked expired "
                f"by this machine's clock: check that the clocks agree"))
        return lease

    def _refusal(self, holder: str) -> str:
        return (f"another game day holds the Lease {self.namespace}/"
                f"{self.name} in the target cluster ({holder}); nothing "
                f"was run")

    def renew_due(self) -> bool:
        return self.renewed is None or self.clock() - self.renewed >= \
            timedelta(seconds=RENEW_SECONDS)

    def renew(self) -> None:
        """Move renewTime on; LockLost if another holder has it now."""
        lease = self.read()
        spec = (lease or {}).get("spec") or {}
        if lease is None or spec.get("holderIdentity") != self.identity:
            raise LockLost(f"the Lease {self.namespace}/{self.name} is now "
                           f"held by {spec.get('holderIdentity')!r}; "
                           f"stopping this game day")
        now = self.clock()
        spec = {**spec, "renewTime": _micro(now)}
        try:
            self._call("replace_namespaced_lease", name=self.name,
                       body=self._body(spec, lease["metadata"].get(
                           "resourceVersion")))
        except KubeRejected as exc:
            if exc.status == 409:
                raise LockLost(f"the Lease {self.namespace}/{self.name} "
                               f"changed under this game day") from exc
            raise
        self.renewed = now

    def release(self) -> None:
        """Give the lease up (as client-go does: empty holder, 1 s)."""
        lease = self.read()
        spec = (lease or {}).get("spec") or {}
        if lease is None or spec.get("holderIdentity") != self.identity:
            return
        spec = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1,
                "renewTime": _micro(self.clock())}
        self._call("replace_namespaced_lease", name=self.name,
                   body=self._body(spec, lease["metadata"].get(
                       "resourceVersion")))
        self.renewed = None


def cluster_key(target: str) -> tuple[str, Kube | None]:
    """The lock name of a target and its API (None: no API to lock in,
    i.e. the lab while no lab is up)."""
    # the lab: the one $CHAOSK3S_LAB_NAME names (lab, or lab:N)
    lab = LabNames(lab_name_from_env()).target if target == "lab" else None
    try:
        inventory = load_target(target)
    except LabStateError:
        return lab or target, None
    key = lab or inventory.cluster
    return key, Kube(inventory.kubeconfig, list(inventory.contexts))


def lock_path(key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", key)
    return lock_dir() / f"gameday-{safe}.lock"


class GamedayLock:
    """The file lock and, where the target has an API, the Lease."""

    def __init__(self, target: str, identity: str,
                 progress: Callable[[str], None]):
        self.target, self.identity, self.progress = target, identity, progress
        self.file: FileLock | None = None
        self.lease: LeaseLock | None = None
        self._retry_at = 0.0

    def acquire(self) -> None:
        """LockHeld (or KubeUnavailable) before anything has run."""
        key, kube = cluster_key(self.target)
        self.file = FileLock(lock_path(key))
        self.file.acquire(self.identity)
        if kube is None:
            self.progress(f"no lab is up: the local lock {self.file.path} "
                          f"alone guards it")
            return
        try:
            lease = LeaseLock(kube, self.identity, progress=self.progress)
            lease.acquire()
            self.lease = lease
        except BaseException:
            self.file.release()
            raise
        self.progress(f"holding the Lease {LEASE_NAMESPACE}/{LEASE_NAME} "
                      f"as {self.identity}")

    def keep(self) -> None:
        """Renew the Lease when due; LockLost if it was taken over. An
        API outage (an experiment may cause one) is only reported."""
        if self.lease is None or not self.lease.renew_due() or \
                time.monotonic() < self._retry_at:
            return
        try:
            self.lease.renew()
        except KubeError as exc:
            self._retry_at = time.monotonic() + RETRY_SECONDS
            self.progress(f"could not renew the Lease (will retry): {exc}")

    def release(self) -> None:
        try:
            if self.lease is not None:
                self.lease.release()
        except KubeError as exc:
            self.progress(f"could not release the Lease (it expires "
                          f"{LEASE_SECONDS} s after its last renewal): {exc}")
        finally:
            self.lease = None
            if self.file is not None:
                self.file.release()
