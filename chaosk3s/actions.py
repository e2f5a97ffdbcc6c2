"""Chaos Toolkit actions: cut links between node roles, restart nodes.

Every fault is recorded in the run's ledger *before* it is applied,
expires on the node itself after `ttl` seconds, and is healed by the
chaosk3s control's cleanup whatever the rollback strategy. Each action
returns what it did (nodes, rules, timestamps) for the journal.
"""

import logging

from chaosk3s.arguments import (
    NODES,
    NOT_NEGATIVE,
    PORTS,
    POSITIVE,
    SOME_LABELS,
    activity,
    one_of,
)
from chaosk3s.errors import SpecError
from chaosk3s.faults import service
from chaosk3s.faults.apply import apply_plan, heal
from chaosk3s.faults.partition import DEFAULT_STATE_DIR, DIRECTIONS, MODES
from chaosk3s.model import Cut, FaultPlan, Node
from chaosk3s.readiness import utc_now
from chaosk3s.run import current_run
from chaosk3s.safety import check_partition_quorum, check_stop_quorum
from chaosk3s.selectors import select
from chaosk3s.target import Target, get_target

__all__ = ["partition_roles", "partition_nodes", "heal_partitions",
           "restart_k3s", "stop_k3s", "start_k3s", "reboot_nodes"]

logger = logging.getLogger("chaostoolkit")
# What every partition action checks before it runs.
_CUT_CHECKS = {"direction": one_of(*DIRECTIONS), "mode": one_of(*MODES),
               "ports": PORTS, "ttl": POSITIVE}


@activity(group=NODES, peers=NODES, **_CUT_CHECKS)
def partition_roles(group: str = "at-risk",
                    peers: str = "control-plane", direction: str = "both",
                    mode: str = "drop", ports: list = None,
                    ttl: float = 300, force: bool = False,
                    configuration: dict = None) -> dict:
    """Cut the network between two groups of nodes.

    Groups are node selectors: a role (`etcd`, `control-plane`,
    `server`, `agent`), `at-risk` (nodes that joined through an etcd-only
    server), `all`, `name:NODE|NODE`, `ROLE[N]` (the N-th node of a role
    by name, from 0), `join-server:GROUP` (the servers GROUP's nodes
    joined through), comma-separated; `-GROUP` leaves nodes out. Numbers,
    booleans and `ports` may be given as strings ("60", "true",
    "6443,10250"). Rules go on the nodes of `group`,
    in iptables chains chaosk3s owns: `direction` `both`, `to` (from them
    to the others) or `from`; `mode` `drop` (black hole) or `reject`;
    `ports` limits the cut to those TCP ports. The cut expires on each
    node after `ttl` seconds even if this process dies. Refused if it
    would leave etcd without quorum (unless `force`). Blast radius: the
    links between the two groups only. Rollback: `heal_partitions`.
    """
    target = get_target(configuration)
    topology = target.topology()
    return _partition(target, target.reachable(select(topology, group)),
                      select(topology, peers), direction, mode, ports, ttl,
                      force, topology)


@activity(selector=SOME_LABELS, peer_selector=SOME_LABELS,
          **_CUT_CHECKS)
def partition_nodes(selector: str, peer_selector: str,
                    direction: str = "both", mode: str = "drop",
                    ports: list = None, ttl: float = 300,
                    force: bool = False, configuration: dict = None) -> dict:
    """Cut the network between nodes chosen by Kubernetes label selectors.

    `selector` and `peer_selector` are label selectors as kubectl takes
    them (for example `node-role.kubernetes.io/etcd=true` or
    `kubernetes.io/hostname in (agent-0,agent-1)`). Otherwise as
    `partition_roles`. Rollback: `heal_partitions`.
    """
    target = get_target(configuration)
    topology = target.topology()
    return _partition(target, target.reachable(
                          _labelled(target, topology, selector)),
                      _labelled(target, topology, peer_selector), direction,
                      mode, ports, ttl, force, topology)


def _labelled(target: Target, topology, selector: str) -> list[Node]:
    names = [i["metadata"]["name"]
             for i in target.kube.list_nodes(selector)["items"]]
    if not names:
        raise SpecError(f"label selector {selector!r} matches no node; "
                        f"nothing was changed")
    return select(topology, "name:" + "|".join(names))


def plan_partition(target: Target, group: list[Node], peers: list[Node],
                   direction: str, mode: str, ports: list | None,
                   ttl: float, force: bool, topology,
                   fault_id: str) -> FaultPlan:
    """The partition as data, with every refusal checked; changes nothing.

    Shared by the action and by `chaosk3s plan` (the dry run)."""
    target.check_allowed(force)
    cuts = [Cut(node=a.name, peer=b.name, peer_address=b.address,
                direction=direction, mode=mode,
                ports=tuple(int(p) for p in ports or ()))
            for a in group for b in peers if a.name != b.name]
    if not cuts:
        raise SpecError("the two groups leave no link to cut (they are the "
                        "same nodes); nothing was changed")
    check_partition_quorum(topology, cuts, force)
    return FaultPlan(run_id=fault_id, cuts=tuple(cuts),
                     ttl_seconds=float(ttl))


def _partition(target: Target, group: list[Node], peers: list[Node],
               direction: str, mode: str, ports: list | None, ttl: float,
               force: bool, topology) -> dict:
    run = current_run(target_config(target))
    plan = plan_partition(target, group, peers, direction, mode, ports, ttl,
                          force, topology, run.ledger.next_fault_id())
    nodes, peer_names = plan.nodes(), sorted({c.peer for c in plan.cuts})
    run.ledger.record({
        "id": plan.run_id, "kind": "partition", "nodes": nodes,
        "peers": peer_names,
        "description": f"{mode} {direction} between {', '.join(nodes)} "
                       f"and {', '.join(peer_names)}",
        "ttl_seconds": float(ttl), "started_at": utc_now(),
        "ended_at": None})
    outcomes = apply_plan(plan, target.transports(
        [n for n in group if n.name in nodes]))
    logger.info("partition %s applied on %d node(s), expires in %ss",
                plan.run_id, len(nodes), ttl)
    return {"fault_id": plan.run_id, "nodes": nodes, "peers": peer_names,
            "direction": direction, "mode": mode,
            "ttl_seconds": float(ttl),
            "outcomes": [o.as_dict() for o in outcomes]}


def target_config(target: Target) -> dict:
    return {"target": target.name}


@activity()
def heal_partitions(fault_id: str = "", configuration: dict = None) -> dict:
    """Remove the partitions this run injected (or only `fault_id`).

    Idempotent: healing twice, or healing what already expired, is not an
    error. Reads the nodes back afterwards and fails if any rule of this
    run is still active. Blast radius: restores links only.
    """
    target = get_target(configuration)
    run = current_run(configuration)
    faults = [f for f in run.ledger.entries() if f["kind"] == "partition"
              and (not fault_id or f["id"] == fault_id)]
    healed, topology = [], target.topology() if faults else None
    for fault in faults:
        nodes = [n for n in topology.nodes if n.name in fault["nodes"]]
        outcomes = heal(target.transports(nodes), fault["id"])
        if not fault.get("ended_at"):
            run.ledger.update(fault["id"], ended_at=utc_now())
        healed.append({"fault_id": fault["id"], "nodes": fault["nodes"],
                       "outcomes": [o.as_dict() for o in outcomes]})
    return {"healed": healed, "at": utc_now()}


def _node_command(action: str, nodes: str, one_at_a_time: bool,
                  force: bool, configuration: dict | None,
                  timeout: float, duration: float = 0) -> dict:
    target = get_target(configuration)
    target.check_allowed(force)
    # Starting needs no API: it may be what brings the API back.
    topology = target.topology(wait=0 if action == "start" else 10)
    chosen = target.reachable(select(topology, nodes))
    if action in ("stop", "reboot", "restart") and not one_at_a_time:
        check_stop_quorum(topology, [n.name for n in chosen], force)
    run = current_run(configuration)
    done = []
    for node in chosen:
        fault_id = run.ledger.next_fault_id()
        run.ledger.record({"id": fault_id, "kind": action,
                           "nodes": [node.name], "description":
                           f"{action} k3s on {node.name}",
                           "started_at": utc_now(), "ended_at": None})
        evidence = _act(target, node, action, float(timeout), fault_id)
        if action == "stop" and duration > 0:
            evidence["starts_again"] = _start_later(target, node, duration,
                                                    fault_id)
        if action != "stop" or duration:  # else open until started
            run.ledger.update(fault_id, ended_at=utc_now())
        if action == "start":
            _close_stops(run, node.name)
        logger.info("%s on %s: seen (%s)", action, node.name,
                    _summary(evidence))
        done.append({**evidence, "at": utc_now()})
    return {"action": action, "nodes": done}


def _act(target: Target, node: Node, action: str, bound: float,
         fault_id: str) -> dict:
    """Run action on node and read back from the node that it happened."""
    commands = target.inventory.commands_for(node.role)
    commands = {k: target.inventory.command(node.role, k, node.name)
                for k in commands}
    transport = target.transport(node)
    if action == "reboot":
        return service.reboot(transport, commands, bound, fault_id)
    if action == "start":
        return service.start(transport, commands, bound,
                             server=node.role != "agent")
    return getattr(service, action)(transport, commands, bound)


def _start_later(target: Target, node: Node, duration: float,
                 fault_id: str) -> str:
    start = target.inventory.command(node.role, "start", node.name)
    # The node starts itself again: no runner needed to undo it.
    target.transport(node).run(service.detached(
        f"sleep {duration:g}\n{start}",
        f"{DEFAULT_STATE_DIR}/{node.name}/start-{fault_id}.log"),
        timeout=30, description=f"start k3s after {duration:g}s")
    return f"after {duration:g}s: {start}"


def _summary(evidence: dict) -> str:
    if "boot_id_after" in evidence:
        return (f"boot id {evidence['boot_id_before']} -> "
                f"{evidence['boot_id_after']}")
    before, after = evidence["before"], evidence["after"]
    return (f"MainPID {before['main_pid']} {before['active_state']} -> "
            f"{after['main_pid']} {after['active_state']}")


def _close_stops(run, node: str) -> None:
    for entry in run.ledger.open_faults():
        if entry["kind"] == "stop" and entry["nodes"] == [node]:
            run.ledger.update(entry["id"], ended_at=utc_now())


@activity(nodes=NODES, timeout=POSITIVE)
def restart_k3s(nodes: str = "agent", one_at_a_time: bool = True,
                force: bool = False, timeout: float = 120,
                configuration: dict = None) -> dict:
    """Restart the K3s service on the selected nodes (a group as in
    `partition_roles`), one node after another by default. Uses the
    inventory's restart command (default `systemctl restart k3s` or
    `k3s-agent`), then reads the unit's state back from each node (its
    `status` command) until it runs as a new process (a new MainPID or
    start time), and fails naming the node, the command, what was
    expected and what was seen if that does not show within `timeout`
    seconds. The result carries that evidence (before and after).
    Blast radius: the selected nodes' K3s processes."""
    return _node_command("restart", nodes, one_at_a_time, force,
                         configuration, timeout)


@activity(nodes=NODES, duration=NOT_NEGATIVE, timeout=POSITIVE)
def stop_k3s(nodes: str, duration: float = 0, force: bool = False,
             timeout: float = 120, configuration: dict = None) -> dict:
    """Stop K3s on the selected nodes and check, on each node, that the
    unit is inactive within `timeout` seconds. With `duration` > 0 each
    node starts it again by itself after that many seconds (node-local,
    so it happens even if the runner dies); otherwise the chaosk3s
    control starts it at cleanup. Refused if it would stop a majority of
    etcd members. Rollback: `start_k3s`."""
    return _node_command("stop", nodes, False, force, configuration,
                         timeout, duration)


@activity(nodes=NODES, timeout=POSITIVE)
def start_k3s(nodes: str, timeout: float = 120,
              configuration: dict = None) -> dict:
    """Start K3s on the selected nodes (the rollback of `stop_k3s`) and
    check, on each node, that the unit is active and, on servers, serving
    (the inventory's `serving` command succeeds) within `timeout` s."""
    return _node_command("start", nodes, True, True, configuration,
                         timeout)


@activity(nodes=NODES, timeout=POSITIVE)
def reboot_nodes(nodes: str, one_at_a_time: bool = True,
                 force: bool = False, timeout: float = 300,
                 configuration: dict = None) -> dict:
    """Reboot the selected machines with the inventory's reboot command
    (default `systemctl reboot`), issued detached from the session, and
    check that each machine's boot id changed (its `boot_id` command,
    default /proc/sys/kernel/random/boot_id) within `timeout` seconds;
    fails naming the node, command and what was seen otherwise. The
    result carries the boot ids before and after. Pair with
    `wait_for_nodes_ready`. Blast radius: whole machines."""
    return _node_command("reboot", nodes, one_at_a_time, force,
                         configuration, timeout)
