"""A marker written through the API before a fault and read back after
it: the evidence that an outage (etcd losing quorum) lost no data.

The marker is one ConfigMap, kube-system/chaosk3s-marker, labelled as
chaosk3s's; each run overwrites it with its run id and a fresh random
token. What was written is remembered by the run in this process, so the
read after the fault is compared with the write itself, not with what
the cluster now says it holds.
"""

import secrets

from chaosk3s.errors import ChaosK3sError, KubeRejected
from chaosk3s.kube import Kube, config_map
from chaosk3s.readiness import utc_now

NAMESPACE = "kube-system"
NAME = "chaosk3s-marker"
TIMEOUT = 10


def _read(kube: Kube) -> dict | None:
    try:
        return kube.call("read_namespaced_config_map", TIMEOUT, name=NAME,
                         namespace=NAMESPACE)
    except KubeRejected as exc:
        if exc.status == 404:
            return None
        raise


def write(kube: Kube, run_id: str) -> dict:
    """Write this run's marker, read it back, and return what was
    written (`token`, `resource_version`, `written_at`); ChaosK3sError if
    the read-back differs."""
    data = {"run": run_id, "token": secrets.token_hex(8)}
    current = _read(kube)
    if current is None:
        kube.call("create_namespaced_config_map", TIMEOUT,
                  namespace=NAMESPACE,
                  body=config_map(NAMESPACE, NAME, data))
    else:
        version = current["metadata"]["resourceVersion"]
        kube.call("replace_namespaced_config_map", TIMEOUT, name=NAME,
                  namespace=NAMESPACE,
                  body=config_map(NAMESPACE, NAME, data, version))
    seen = _read(kube)
    if seen is None or seen.get("data") != data:
        raise ChaosK3sError(
            f"wrote ConfigMap {NAMESPACE}/{NAME} with {data} but read back "
            f"{None if seen is None else seen.get('data')}; nothing else "
            f"was changed")
    return {"configmap": f"{NAMESPACE}/{NAME}", **data,
            "resource_version": seen["metadata"]["resourceVersion"],
            "written_at": utc_now()}


def check(kube: Kube, written: dict | None) -> dict:
    """Read the marker back and compare it with `written` (what this run
    wrote, or None when it wrote nothing yet): `checked` names the
    markers compared, `lost` says how each differs."""
    if written is None:
        return {"checked": [], "lost": [], "read_at": utc_now()}
    seen = _read(kube)
    expected = {"run": written["run"], "token": written["token"]}
    lost = []
    if seen is None:
        lost.append(f"{written['configmap']} is gone (written with "
                    f"resourceVersion {written['resource_version']})")
    elif seen.get("data") != expected:
        lost.append(f"{written['configmap']} holds {seen.get('data')}, "
                    f"not what this run wrote: {expected}")
    return {"checked": [written["configmap"]], "lost": lost,
            "read_at": utc_now()}
