"""Chaos Toolkit probes: what the cluster looks like right now.

Probes return what they observe and let the experiment's tolerance judge;
they raise only when they cannot observe at all (no API server answers,
a node cannot be reached).
"""

import logging
import time

from chaosk3s import markers, upgrade
from chaosk3s.arguments import (
    K3S_VERSION,
    LABELS,
    NODES,
    NOT_NEGATIVE,
    POSITIVE,
    SOME_K3S_VERSION,
    activity,
)
from chaosk3s.errors import ChaosK3sError
from chaosk3s.faults.service import member_health
from chaosk3s.flaps import flaps
from chaosk3s.kube import KubeUnavailable, node_state
from chaosk3s.latency import measure, summarize
from chaosk3s.readiness import ReadinessWatch, utc_now
from chaosk3s.run import current_run
from chaosk3s.selectors import select
from chaosk3s.target import get_target
from chaosk3s.topology import build_topology

__all__ = ["all_nodes_ready", "nodes_not_ready", "wait_for_nodes_ready",
           "nodes_not_ready_within", "api_server_available",
           "api_unanswered_within", "marker_readback",
           "at_risk_nodes", "nodes_pinned_to_etcd_only",
           "etcd_quorum_healthy", "active_faults", "ready_flaps",
           "api_latency", "nodes_cordoned", "all_nodes_schedulable",
           "nodes_at_version"]

logger = logging.getLogger("chaostoolkit")
SUPERVISOR_PORT = 6443


@activity(nodes=NODES, label_selector=LABELS)
def all_nodes_ready(nodes: str = "all", label_selector: str = "",
                    configuration: dict = None) -> bool:
    """True when every selected node reports Ready=True.

    `nodes` is a node selector as in `partition_roles` (`all`, a role,
    `at-risk`, `name:A|B`, `control-plane[1]`, `join-server:at-risk`, and
    `-GROUP` to leave some out, e.g. `all,-control-plane[1]`);
    `label_selector`
    narrows the API listing. For `all`, one request for the rows
    `kubectl get nodes` prints, not the Node objects: fast on clusters of
    thousands of nodes. Blast radius: none (read-only).
    """
    return not nodes_not_ready(nodes, label_selector, configuration)


@activity(nodes=NODES, label_selector=LABELS)
def nodes_not_ready(nodes: str = "all", label_selector: str = "",
                    configuration: dict = None) -> list:
    """Names of the selected nodes whose Ready condition is not True.

    Unknown (the control plane stopped hearing from the node) and False
    both count. Blast radius: none (read-only).
    """
    target = get_target(configuration)
    if nodes == "all":  # names and readiness are all it takes
        readiness = target.kube.node_readiness(label_selector)
        return sorted(name for name, ready in readiness.items() if not ready)
    items = target.kube.list_nodes(label_selector)["items"]
    wanted = {n.name for n in select(build_topology(items, target.inventory),
                                     nodes)}
    return sorted(state.name for state in map(node_state, items)
                  if state.ready != "True" and state.name in wanted)


@activity(nodes=NODES)
def nodes_cordoned(nodes: str = "all", configuration: dict = None) -> list:
    """Names of the selected nodes that are cordoned (spec.unschedulable
    true: `kubectl cordon` or a drain), whoever cordoned them.
    Blast radius: none (read-only)."""
    target = get_target(configuration)
    items = target.kube.list_nodes()["items"]
    wanted = {n.name for n in select(build_topology(items, target.inventory),
                                     nodes)}
    return sorted(item["metadata"]["name"] for item in items
                  if (item.get("spec") or {}).get("unschedulable")
                  and item["metadata"]["name"] in wanted)


@activity(nodes=NODES)
def all_nodes_schedulable(nodes: str = "all",
                          configuration: dict = None) -> bool:
    """True when no selected node is cordoned (see `nodes_cordoned`).
    Blast radius: none (read-only)."""
    cordoned = nodes_cordoned(nodes, configuration)
    if cordoned:
        logger.info("cordoned: %s", ", ".join(cordoned))
    return not cordoned


@activity(timeout=POSITIVE)
def api_server_available(timeout: float = 30,
                         configuration: dict = None) -> bool:
    """True as soon as any API server of the target answers a node list;
    False if none does within `timeout` seconds.

    Lets a steady state say "the control plane came back" as a verdict
    rather than an error. Blast radius: none (read-only).
    """
    try:
        get_target(configuration).kube.list_nodes(wait=timeout)
        return True
    except KubeUnavailable as exc:
        logger.info("no API server answered in %ss: %s", timeout, exc)
        return False


@activity(seconds=NOT_NEGATIVE)
def api_unanswered_within(seconds: float = 10,
                          configuration: dict = None) -> dict:
    """Ask the API for the node list about once a second for `seconds`;
    return how many asks `asked` and how many no API server answered
    (`unanswered`: refused, timed out after 1 s, or a 5xx such as etcd
    without quorum), and when the last ask was answered
    (`last_answered_after_seconds`, null if none was). An API that hangs
    rather than refuses makes each ask last its client's retries too (up
    to about 5 s), so the probe may end that much after `seconds`.

    Holds a fault while the API may be gone, where
    `nodes_not_ready_within` cannot watch, and records whether it was.
    Blast radius: none (read-only).
    """
    kube = get_target(configuration).kube
    started = time.monotonic()
    asked = unanswered = 0
    answered_at = None
    while True:
        asked += 1
        try:
            kube.call("list_node", timeout=1)
            answered_at = round(time.monotonic() - started, 3)
        except KubeUnavailable:
            unanswered += 1
        left = started + float(seconds) - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(1.0, left))
    logger.info("API: %d of %d asks in %ss unanswered", unanswered, asked,
                seconds)
    return {"asked": asked, "unanswered": unanswered,
            "last_answered_after_seconds": answered_at}


@activity(timeout=POSITIVE, nodes=NODES)
def wait_for_nodes_ready(timeout: float = 120, nodes: str = "all",
                         configuration: dict = None) -> dict:
    """Wait until every selected node is Ready, watching the API.

    `nodes` is a node selector as in `partition_roles` (`all`, a role,
    `at-risk`, `name:NODE|NODE`, `ROLE[N]`, `join-server:GROUP`, `-GROUP`).
    Returns `all_ready`,
    `elapsed_seconds`, `not_ready` and, per node, `ready_after_seconds`
    (0 when it was already Ready; null when it never became Ready within
    `timeout`). Built on a watch, it sees a transition within
    milliseconds instead of polling. Blast radius: none (read-only).
    """
    target = get_target(configuration)
    names = {n.name for n in select(target.topology(), nodes)}
    started = time.monotonic()
    ready_after: dict[str, float | None] = dict.fromkeys(names)
    watch = ReadinessWatch(target.kube).start()

    def note(states) -> bool:
        for name in names:
            state = states.get(name)
            if state and state.ready == "True" and ready_after[name] is None:
                ready_after[name] = round(time.monotonic() - started, 3)
        return all(ready_after[name] is not None for name in names)

    try:
        done = watch.wait(note, timeout)
    finally:
        watch.stop()
    missing = sorted(n for n, t in ready_after.items() if t is None)
    if missing:
        logger.info("not Ready after %ss: %s", timeout, ", ".join(missing))
    return {"all_ready": done, "not_ready": missing,
            "elapsed_seconds": round(time.monotonic() - started, 3),
            "nodes": {n: {"ready_after_seconds": ready_after[n]}
                      for n in sorted(names)}}


@activity(seconds=NOT_NEGATIVE)
def nodes_not_ready_within(seconds: float = 20,
                           configuration: dict = None) -> list:
    """Watch the nodes for `seconds`; return every node that was not
    Ready at any moment in that window (sorted).

    Use it in a method to hold a fault for a while and record that it
    took effect. Blast radius: none (read-only).
    """
    watch = ReadinessWatch(get_target(configuration).kube).start()
    seen: set[str] = set()

    def note(states) -> bool:
        seen.update(n for n, s in states.items() if s.ready != "True")
        return False  # never done early: watch the whole window

    try:
        watch.wait(note, seconds)
    finally:
        watch.stop()
    return sorted(seen)


@activity()
def marker_readback(configuration: dict = None) -> dict:
    """Read back the marker this run wrote with `write_marker` and say
    whether it still holds what was written: `checked` (the markers
    compared: none before the run wrote one) and `lost` (how each
    differs: gone, or other contents). Use the tolerance
    `chaosk3s.tolerances.nothing_lost`. Blast radius: none (read-only).
    """
    written = current_run(configuration).marker
    result = markers.check(get_target(configuration).kube, written)
    logger.info("markers checked: %s; lost: %s",
                result["checked"] or "none written yet",
                result["lost"] or "none")
    return result


@activity()
def at_risk_nodes(configuration: dict = None) -> list:
    """Nodes whose join server is an etcd-only server (K3s #11311).

    Read from the `k3s.io/node-args` annotation (`--server`) of every
    node. These are the nodes that fall back to an etcd-only server when
    the control plane is unreachable. Blast radius: none (read-only).
    """
    topology = get_target(configuration).topology()
    return sorted(node.name for node in topology.at_risk())


@activity(settle_seconds=NOT_NEGATIVE)
def nodes_pinned_to_etcd_only(configuration: dict = None,
                              settle_seconds: float = 5) -> list:
    """Nodes holding connections to an etcd-only server's port 6443.

    An etcd-only server cannot serve the Kubernetes API: a node whose
    load balancer keeps its connections there is stuck (K3s #11311).
    Reads established TCP connections on every agent and etcd-only
    server with `ss` over the node's transport, twice, `settle_seconds`
    apart: only a node holding such connections both times counts. A
    load balancer that is failing back (the K3s rework closes its
    default's connections one health tick, 1 s, after a server recovers)
    is not pinned. Blast radius: none.
    """
    target = get_target(configuration)
    topology = target.topology()
    etcd_only = {address: n.name for n in topology.with_role("etcd")
                 for address in n.all_addresses}
    nodes = target.reachable(topology.with_role("agent", "etcd"))
    pinned = [n for n in nodes if _etcd_only_peers(target, n, etcd_only)]
    if pinned and settle_seconds:
        time.sleep(settle_seconds)
        pinned = [n for n in pinned
                  if _etcd_only_peers(target, n, etcd_only)]
    return sorted(n.name for n in pinned)


def _etcd_only_peers(target, node, etcd_only: dict[str, str]) -> set[str]:
    """The etcd-only servers (other than itself) whose 6443 the node has
    established connections to."""
    result = target.transport(node).run(
        ["ss", "-Htn", "state", "established",
         f"( dport = :{SUPERVISOR_PORT} )"], timeout=15)
    peers = {line.split()[-1].rsplit(":", 1)[0]
             for line in result.stdout.splitlines() if line.strip()}
    return {etcd_only[p] for p in peers
            if etcd_only.get(p) not in (None, node.name)}


@activity()
def etcd_quorum_healthy(configuration: dict = None) -> bool:
    """True when more than half of the etcd members report healthy.

    Runs the inventory's `etcd_health` command on every etcd node (on a
    real K3s server: curl with the etcd client certificate against
    https://127.0.0.1:2379/health). Blast radius: none (read-only).
    """
    target = get_target(configuration)
    members = target.reachable(target.topology().with_role("etcd",
                                                           "server"))
    healthy = 0
    for node in members:
        command = target.inventory.command(node.role, "etcd_health",
                                           node.name)
        try:
            ok, _said = member_health(target.transport(node), command)
        except ChaosK3sError as exc:
            logger.info("etcd health on %s: %s", node.name, exc)
            continue
        healthy += ok
    logger.info("etcd: %d/%d members healthy", healthy, len(members))
    return healthy > len(members) / 2


@activity()
def active_faults(configuration: dict = None) -> list:
    """Every chaosk3s rule, qdisc and node timer active on any node,
    read back from the nodes.

    Each item names the node, the fault that owns it and its `kind`:
    a `partition` lists its cuts (peer, direction, mode), a
    `degradation` its `links` (peer, address, interface, netem's
    options as tc shows them, whether a filter steers the peer's
    packets into netem), a `stop` its pending node-side start. An empty
    list means nothing chaosk3s injected is active.
    Blast radius: none (read-only).
    """
    from chaosk3s.faults.apply import read_active
    target = get_target(configuration)
    return [fault.as_dict() for outcome in read_active(target.transports(),
                                                     target.node_state_dir)
            for fault in outcome.active]


@activity(seconds=POSITIVE, nodes=NODES)
def ready_flaps(seconds: float = 60, nodes: str = "all",
                configuration: dict = None) -> dict:
    """Watch the selected nodes' Ready condition for `seconds` and count,
    per node, its flaps (changes from Ready to NotReady or Unknown) and
    its longest span not Ready in that window (a span still open at the
    end counts up to the end, and `not_ready_at_end` says so). Returns
    `nodes` ({name: {"flaps", "longest_not_ready_seconds",
    "not_ready_at_end"}}), `max_flaps`, `longest_not_ready_seconds` and
    `window_seconds`, for a tolerance such as a jsonpath on `max_flaps`.
    Built on the same watch as `wait_for_nodes_ready`. Blast radius:
    none (read-only).
    """
    target = get_target(configuration)
    names = {n.name for n in select(target.topology(), nodes)}
    watch = ReadinessWatch(target.kube).start()
    start = utc_now()
    try:
        watch.wait(lambda states: False, seconds)  # the whole window
    finally:
        watch.stop()
    counted = flaps(watch.timeline, names, start, utc_now())
    logger.info("ready flaps in %ss: max %d, longest NotReady %ss",
                seconds, counted["max_flaps"],
                counted["longest_not_ready_seconds"])
    return counted


@activity(nodes=NODES, requests=POSITIVE, timeout=POSITIVE)
def api_latency(nodes: str = "agent", requests: int = 3,
                timeout: float = 15, configuration: dict = None) -> dict:
    """How long an API request takes as the selected nodes make it:
    through each node's own load balancer (agents, etcd-only servers) or
    its own API server, timed on the node itself.

    Runs the inventory's `api_request` command `requests` times on each
    node over its transport (default: `curl -sk` of /readyz on
    127.0.0.1:6444, or :6443 on servers with an API server; any HTTP
    answer, 401 included, counts) and times each run with the node's
    clock, so the transport's own delay is not in it (the command's
    start-up is: a few ms for curl). Returns per node `seconds` (the
    requests that got an answer), `median_seconds`, `max_seconds` and
    `failed` (no answer, or the node could not be reached: then
    `error`), and over all `max_median_seconds` (null when no request
    was answered) and `failed`. Blast radius: a few API requests.
    """
    target = get_target(configuration)
    chosen = target.reachable(select(target.topology(), nodes))
    per_node = {node.name: measure(
        target.transport(node), target.inventory.command(
            node.role, "api_request", node.name), requests, timeout)
        for node in chosen}
    result = summarize(per_node)
    logger.info("API latency from %d node(s): max median %ss, %d failed",
                len(per_node), result["max_median_seconds"],
                result["failed"])
    return result


@activity(version=K3S_VERSION, nodes=NODES, before_method=SOME_K3S_VERSION)
def nodes_at_version(version: str, nodes: str = "all",
                     before_method: str = "",
                     configuration: dict = None) -> bool:
    """True when every selected node's kubelet reports `version` (the
    API's `status.nodeInfo.kubeletVersion`, the VERSION column of
    `kubectl get nodes`). With `before_method`, that version is the one
    expected until the experiment's method starts (as the chaosk3s
    control sees it): a steady-state hypothesis checked before a roll
    expects the release the cluster starts on, and after it the one the
    roll goes to (`any`: not checked before the method). Nodes at another
    version are logged. Blast radius: none (read-only)."""
    target = get_target(configuration)
    run = current_run(configuration)
    expected = before_method if before_method and \
        not run.method_started else version
    if expected == "any":
        return True
    versions = upgrade.kubelet_versions(target)
    wanted = select(target.topology(), nodes)
    other = {n.name: versions.get(n.name) or "none" for n in wanted
             if versions.get(n.name) != expected}
    if other:
        logger.info("nodes not at %s: %s", expected, ", ".join(
            f"{name} at {seen}" for name, seen in sorted(other.items())))
    return not other
