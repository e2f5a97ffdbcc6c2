"""The CronJob's Job and pod: kept evidence and safe stops.

- The runner is the container's process 1, with no shell in between: a
  shell as PID 1 ignores the SIGTERM Kubernetes sends (the kernel drops
  signals PID 1 has no handler for) and would not pass it on, so the run
  could not heal before the kill. The runner handles SIGTERM (it stops
  its chaos run, which heals) and maps "outside the windows" to exit 0
  itself (`gameday run --skipped-ok`).
- terminationGracePeriodSeconds is the runner's heal grace plus a
  minute (Kubernetes' default, 30 s, would SIGKILL a run mid-heal), as
  the systemd unit's TimeoutStopSec.
- activeDeadlineSeconds bounds the Job: past it Kubernetes stops the pod
  with that same grace, so a stuck game day heals and ends.
- The evidence (reports and ledger, EVIDENCE_DIR) is on a
  PersistentVolumeClaim when the export asks for one (`--pvc SIZE`), so a
  scheduled game day leaves its reports and a ledger `chaosk3s cleanup`
  can read; otherwise on an emptyDir, gone with the pod. Either way the
  runner can also write each game day's summary into a ConfigMap
  (`--summary-configmap`, chaosk3s.gameday.summary_configmap).
- Required node affinity keeps the pod off every node the inventory
  names (the nodes its experiments may fault: a restart or a partition
  of the runner's own node would end or blind the run).
"""

from __future__ import annotations

import re

from chaosk3s.errors import SpecError
from chaosk3s.gameday.podfiles import CONFIG_DIR
from chaosk3s.gameday.runner import HEAL_GRACE_SECONDS

EVIDENCE_DIR = "/var/lib/chaosk3s"
REPORTS_DIR = f"{EVIDENCE_DIR}/reports"
LEDGER_DIR = f"{EVIDENCE_DIR}/ledger"
TERMINATION_GRACE = HEAL_GRACE_SECONDS + 60
DEADLINE_PER_EXPERIMENT = 30 * 60  # seconds, by default
MIN_DEADLINE = 60 * 60
_QUANTITY = re.compile(r"[1-9]\d*(\.\d+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?")


def default_deadline(experiments: int) -> int:
    return max(MIN_DEADLINE, DEADLINE_PER_EXPERIMENT * experiments)


def check_size(size: str) -> str:
    if not _QUANTITY.fullmatch(size):
        raise SpecError(f"--pvc {size!r}: give a storage size such as 1Gi "
                        f"or 500Mi")
    return size


def evidence_claim(name: str, namespace: str, size: str,
                   meta: dict) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": meta, "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": check_size(size)}}}}


def container(image: str, with_ssh: bool, ssh_dir: str,
              summary: str | None = None) -> dict:
    """summary: NAMESPACE/NAME of the ConfigMap for the game day's
    summary (None: none)."""
    mounts = [{"name": "plan", "mountPath": CONFIG_DIR, "readOnly": True},
              {"name": "evidence", "mountPath": EVIDENCE_DIR}]
    if with_ssh:
        mounts.append({"name": "ssh", "mountPath": ssh_dir,
                       "readOnly": True})
    into = ["--summary-configmap", summary] if summary else []
    return {
        "name": "gameday", "image": image,
        "command": ["chaosk3s", "gameday", "run", "--only-in-window",
                    "--skipped-ok", *into, f"{CONFIG_DIR}/plan.yaml"],
        "env": [{"name": "CHAOSK3S_LEDGER_DIR", "value": LEDGER_DIR}],
        "volumeMounts": mounts}


def affinity(avoid: list[str]) -> dict | None:
    """Required: not on any node of `avoid` (by kubernetes.io/hostname,
    which K3s sets to the node's name)."""
    if not avoid:
        return None
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "NotIn",
                 "values": sorted(avoid)}]}]}}}


def evidence_volume(claim: str | None) -> dict:
    if claim is None:
        return {"name": "evidence", "emptyDir": {}}
    return {"name": "evidence", "persistentVolumeClaim": {
        "claimName": claim}}
