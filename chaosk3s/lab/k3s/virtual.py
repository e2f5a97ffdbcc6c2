"""Virtual nodes: Node objects with no machine behind them (like kwok).

One process keeps thousands of them alive by writing their Node and Lease
objects straight into etcd in batched transactions, so probes can be
measured on clusters of thousands of nodes without thousands of kubelets
on a 2-core machine. Through the API they look like any agent: labelled
`chaosk3s.io/virtual=true`, Ready, leases renewed every
`node_status_update`. The inventory does not list them, so no fault is
ever planned on them.

Run as the lab service `virtual`: python -m chaosk3s.lab.k3s.virtual
--state-dir DIR --node NODE (the node whose namespace it runs in).
"""

import argparse
import asyncio
import json
import logging
import signal
import sys
import uuid
from pathlib import Path

from chaosk3s.lab.k3s.apiserver.store import encode
from chaosk3s.lab.k3s.context import NodeContext
from chaosk3s.lab.k3s.etcdclient import EtcdClient, EtcdError
from chaosk3s.lab.k3s.objects import (
    NODE_LEASE_NAMESPACE,
    lease_body,
    node_body,
    now_rfc3339,
    ready_condition,
)
from chaosk3s.lab.state import LabState

BATCH = 100  # puts per etcd transaction (etcd's default cap is 128)
NODE_KEY = "/registry/minions/"
LEASE_KEY = f"/registry/leases/{NODE_LEASE_NAMESPACE}/"
VIRTUAL_LABEL = "chaosk3s.io/virtual"


# What a K3s node reports about its images (the system charts' images), so
# a virtual Node weighs what a real one does for clients that read it.
_IMAGES = [{"names": [f"docker.io/rancher/mirrored-{name}@sha256:{'0' * 64}",
                      f"docker.io/rancher/mirrored-{name}:{tag}"],
            "sizeBytes": size}
           for name, tag, size in [
               ("coredns-coredns", "1.11.3", 18562039),
               ("library-traefik", "2.11.10", 48497409),
               ("metrics-server", "v0.7.2", 19494617),
               ("local-path-provisioner", "v0.0.30", 20450478),
               ("library-busybox", "1.36.1", 2159900),
               ("pause", "3.6", 301463),
               ("klipper-helm", "v0.9.3-build20241008", 71119466),
               ("klipper-lb", "v0.4.9", 4990278)]]


def virtual_names(count: int) -> list[str]:
    return [f"virtual-{index:05d}" for index in range(count)]


def node_object(name: str, version: str, now: str) -> dict:
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
              VIRTUAL_LABEL: "true"}
    args = {"k3s.io/node-args": json.dumps(["agent", "--token", "********"])}
    node = node_body(name, labels, args, {
        "conditions": [ready_condition(now, now)], "images": _IMAGES,
        "addresses": [{"type": "Hostname", "address": name}],
        "nodeInfo": {
            "kubeletVersion": version, "kubeProxyVersion": version,
            "containerRuntimeVersion": "virtual://0",
            "osImage": "chaosk3s virtual node", "kernelVersion": "none",
            "operatingSystem": "linux", "architecture": "amd64",
            "machineID": name, "systemUUID": name, "bootID": name}})
    node["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=now)
    return node


async def _write(etcd: EtcdClient, items: list[tuple[str, bytes]]) -> None:
    for start in range(0, len(items), BATCH):
        await etcd.put_many(items[start:start + BATCH])


async def keep_alive(ctx: NodeContext, stop: asyncio.Event) -> None:
    names = virtual_names(ctx.spec.virtual_nodes)
    etcd = EtcdClient(ctx.etcd_endpoints)
    duration = int(ctx.timings.node_monitor_grace)
    try:
        now = now_rfc3339()
        await _write(etcd, [(NODE_KEY + n, encode(node_object(
            n, ctx.release.version, now))) for n in names])
        ctx.log.info("registered %d virtual nodes", len(names))
        while not stop.is_set():
            renew = now_rfc3339(micro=True)
            try:
                await _write(etcd, [(LEASE_KEY + n, encode(lease_body(
                    n, duration, renew))) for n in names])
            except EtcdError as exc:
                ctx.log.warning("renewing virtual leases: %s", exc)
            try:
                await asyncio.wait_for(stop.wait(),
                                       ctx.timings.node_status_update)
            except TimeoutError:
                pass
    finally:
        await etcd.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="chaosk3s.lab.k3s.virtual")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--node", required=True)
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    state = LabState(Path(args.state_dir))
    spec, _phase = state.load()
    ctx = NodeContext(spec=spec, node=spec.node(args.node), state=state,
                      log=logging.getLogger("virtual"))

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await keep_alive(ctx, stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
