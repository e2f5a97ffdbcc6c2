"""Chaos Toolkit actions: cut links between node roles, restart nodes.

These functions take the arguments and choose the nodes; the run's
FaultSession (chaosk3s.faults.session) owns the faults: it records each
in the run's ledger *before* applying it, makes it expire on the node
itself, proves the effect, and heals it (here, in the control's cleanup
whatever the rollback strategy, or in `chaosk3s cleanup`). A cumulative
quorum guard refuses what would leave etcd without a majority, counting
this run's open faults, other runs' faults read from the nodes and the
members' live health. Nothing is injected into a cluster that has not
consented (chaosk3s.consent), nor beyond the inventory's blast-radius
caps with this run's open faults (chaosk3s.blast); `force` lets an
action past the quorum guard only. Each action returns what it did
(nodes, rules, evidence, timestamps) for the journal.
"""

import logging
import time

from chaosk3s import markers, upgrade
from chaosk3s.arguments import (
    K3S_VERSION,
    NODES,
    NOT_NEGATIVE,
    PORTS,
    POSITIVE,
    SOME_LABELS,
    activity,
    one_of,
)
from chaosk3s.arguments import Check as Expect
from chaosk3s.blast import check_blast
from chaosk3s.errors import ChaosK3sError, SpecError
from chaosk3s.faults.guard import read_etcd_state, with_ledger
from chaosk3s.faults.netem import parse_rate_bits
from chaosk3s.faults.partition import DIRECTIONS, MODES, validate_plan
from chaosk3s.faults.session import Check
from chaosk3s.faults.undo import LINK_KINDS
from chaosk3s.holds import DEFAULT_FAULT_TTL
from chaosk3s.links import describe, flap_of, netem_of, plan_degradation
from chaosk3s.model import Cut, FaultPlan, Flap, Node, Topology
from chaosk3s.readiness import utc_now
from chaosk3s.run import current_run
from chaosk3s.safety import (
    EtcdState,
    check_partition_quorum,
    check_quorum,
    cut_pairs,
    members_of,
)
from chaosk3s.selectors import select
from chaosk3s.target import Target, get_target

__all__ = ["partition_roles", "partition_nodes", "degrade_links",
           "degrade_nodes", "heal_partitions",
           "restart_k3s", "stop_k3s", "start_k3s", "reboot_nodes",
           "upgrade_k3s", "write_marker"]

logger = logging.getLogger("chaostoolkit")
PERCENT = Expect("a percentage from 0 to 100",
                lambda v: v if 0 <= v <= 100 else _no())
DELAY = Expect("milliseconds from 0 to 60000",
              lambda v: v if 0 <= v <= 60000 else _no())
RATE = Expect("a rate: a number and a unit (bit, kbit, mbit, gbit; bps, "
             "kbps, mbps, gbps are bytes), e.g. 1mbit, or empty for none",
             lambda v: parse_rate_bits(v) is not None and v)
# What every degradation action checks before it runs.
_DEGRADE_CHECKS = {"delay_ms": DELAY, "jitter_ms": DELAY,
                   "correlation": PERCENT, "loss": PERCENT,
                   "duplicate": PERCENT, "corrupt": PERCENT,
                   "reorder": PERCENT, "rate": RATE,
                   "direction": one_of(*DIRECTIONS), "ports": PORTS,
                   "ttl": POSITIVE, "flap_period": NOT_NEGATIVE,
                   "flap_duty": PERCENT, "flap_count": POSITIVE}


def _no() -> None:
    raise ValueError


# What every partition action checks before it runs.
_CUT_CHECKS = {"direction": one_of(*DIRECTIONS), "mode": one_of(*MODES),
               "ports": PORTS, "ttl": POSITIVE,
               "flap_period": NOT_NEGATIVE, "flap_duty": PERCENT,
               "flap_count": POSITIVE}


@activity(group=NODES, peers=NODES, **_CUT_CHECKS)
def partition_roles(group: str = "at-risk",
                    peers: str = "control-plane", direction: str = "both",
                    mode: str = "drop", ports: list = None,
                    ttl: float = 300, force: bool = False,
                    flap_period: float = 0, flap_duty: float = 50,
                    flap_count: int = 1,
                    configuration: dict = None) -> dict:
    """Cut the network between two groups of nodes.

    Groups are node selectors: a role (`etcd`, `control-plane`,
    `server`, `agent`), `at-risk` (nodes that joined through an etcd-only
    server), `all`, `name:NODE|NODE`, `ROLE[N]` (the N-th node of a role
    by name, from 0), `join-server:GROUP` (the servers GROUP's nodes
    joined through), comma-separated; `-GROUP` leaves nodes out. Numbers,
    booleans and `ports` may be given as strings ("60", "true",
    "6443,10250"). Rules go on the nodes of `group`, in iptables (and,
    for IPv6 addresses, ip6tables) chains chaosk3s owns, against every
    address of each peer: `direction` `both`, `to`
    (from them to the others) or `from`; `mode` `drop` (black hole) or
    `reject`; `ports` limits the cut to those TCP ports. The cut expires
    on each node after `ttl` seconds even if this process dies. Refused
    if, with the faults already open (this run's, other runs' read from
    the nodes, unhealthy members), it would leave etcd without quorum
    (unless `force`), or if `group` holds more of a role than the
    inventory's blast-radius caps allow (force does not lift those).
    With `flap_period` (seconds) the node itself switches the cut off
    and on: on for `flap_duty` % of each period, `flap_count` periods
    from the apply, then off (the ttl must cover them; each phase at
    least 0.5 s); it stops at the ttl even if this process dies.
    Blast radius: the links between the two groups only. Rollback:
    `heal_partitions`.
    """
    target = get_target(configuration)
    topology = target.topology()
    return _partition(target, target.reachable(select(topology, group)),
                      select(topology, peers), direction, mode, ports, ttl,
                      force, topology, flap_of(locals()))


@activity(selector=SOME_LABELS, peer_selector=SOME_LABELS,
          **_CUT_CHECKS)
def partition_nodes(selector: str, peer_selector: str,
                    direction: str = "both", mode: str = "drop",
                    ports: list = None, ttl: float = 300,
                    force: bool = False, flap_period: float = 0,
                    flap_duty: float = 50, flap_count: int = 1,
                    configuration: dict = None) -> dict:
    """Cut the network between nodes chosen by Kubernetes label selectors.

    `selector` and `peer_selector` are label selectors as kubectl takes
    them (for example `node-role.kubernetes.io/etcd=true` or
    `kubernetes.io/hostname in (agent-0,agent-1)`). Otherwise as
    `partition_roles`. Rollback: `heal_partitions`.
    """
    target = get_target(configuration)
    topology = target.topology()
    return _partition(target, target.reachable(
                          labelled_nodes(target, topology, selector)),
                      labelled_nodes(target, topology, peer_selector),
                      direction, mode, ports, ttl, force, topology,
                      flap_of(locals()))


@activity(group=NODES, peers=NODES, **_DEGRADE_CHECKS)
def degrade_links(group: str = "agent", peers: str = "control-plane",
                  delay_ms: float = 0, jitter_ms: float = 0,
                  correlation: float = 0, loss: float = 0,
                  duplicate: float = 0, corrupt: float = 0,
                  reorder: float = 0, rate: str = "",
                  direction: str = "both", ports: list = None,
                  ttl: float = 300, force: bool = False,
                  flap_period: float = 0, flap_duty: float = 50,
                  flap_count: int = 1,
                  configuration: dict = None) -> dict:
    """Degrade the network between two groups of nodes (tc netem).

    Groups are node selectors as in `partition_roles`. Packets between
    them are delayed by `delay_ms` (± `jitter_ms`, each delay correlated
    `correlation` % with the one before), and a share of them (in %) is
    lost (`loss`), duplicated, corrupted or sent out of order
    (`reorder`, which needs a delay); `rate` limits the bandwidth ("1mbit",
    "500kbit"; bps, kbps, mbps are bytes per second). tc shapes what
    leaves a node, so `direction` says whose packets: `to` those the
    group sends to the peers (tc on the group), `from` those the peers
    send to the group (tc on the peers), `both` (the default) both,
    each side delayed once. `ports` limits it to TCP packets from or to
    those ports. Only packets to the chosen peers' addresses pass
    netem, through filters under a root qdisc chaosk3s adds to the
    interface each peer's route leaves by (an interface that already
    has one is refused, never replaced); everything else, the
    transport's own path included, is untouched. It expires on each
    node after `ttl` seconds even if this process dies. A degraded link
    between etcd members counts as cut for the quorum guard (heavy loss
    or a delay past etcd's election timeout is one); `force` lifts
    that, not the blast-radius caps. `flap_period`, `flap_duty` and
    `flap_count` switch it off and on on the node, as in
    `partition_roles`. Rollback: `heal_partitions`.
    """
    target = get_target(configuration)
    topology = target.topology()
    return _degrade(target, target.reachable(select(topology, group)),
                    target.reachable(select(topology, peers)),
                    locals(), topology)


@activity(selector=SOME_LABELS, peer_selector=SOME_LABELS,
          **_DEGRADE_CHECKS)
def degrade_nodes(selector: str, peer_selector: str,
                  delay_ms: float = 0, jitter_ms: float = 0,
                  correlation: float = 0, loss: float = 0,
                  duplicate: float = 0, corrupt: float = 0,
                  reorder: float = 0, rate: str = "",
                  direction: str = "both", ports: list = None,
                  ttl: float = 300, force: bool = False,
                  flap_period: float = 0, flap_duty: float = 50,
                  flap_count: int = 1,
                  configuration: dict = None) -> dict:
    """Degrade the network between nodes chosen by Kubernetes label
    selectors (as `partition_nodes` takes them). Otherwise as
    `degrade_links`. Rollback: `heal_partitions`."""
    target = get_target(configuration)
    topology = target.topology()
    return _degrade(target, target.reachable(
                        labelled_nodes(target, topology, selector)),
                    target.reachable(labelled_nodes(target, topology,
                                                    peer_selector)),
                    locals(), topology)


def _degrade(target: Target, group: list[Node], peers: list[Node],
             args: dict, topology: Topology) -> dict:
    target.check_consent()
    run = current_run(target_config(target))
    netem = netem_of(args)
    plan = plan_degradation(group, peers, netem, args["direction"],
                            args["ports"], args["ttl"], "pending",
                            flap_of(args))
    validate_plan(plan)
    nodes = plan.nodes()
    names = sorted({d.peer for d in plan.degradations} - set(nodes)) or \
        sorted({d.peer for d in plan.degradations})
    members = set(members_of(topology))
    pairs = [sorted(p) for p in {frozenset((d.node, d.peer))
                                 for d in plan.degradations}
             if p <= members]
    check = fault_guard(target, topology, "this degradation", nodes,
                        cuts={frozenset(p): "this degradation"
                              for p in pairs}, force=args["force"])
    text = describe(netem)
    done = run.session.partition(
        plan, [n for n in topology.nodes if n.name in nodes], names,
        f"degrade {args['direction']} between "
        f"{', '.join(sorted(n.name for n in group))} and "
        f"{', '.join(sorted(n.name for n in peers))}: {text}", pairs,
        check, kind="degradation")
    logger.info("degradation %s (%s) applied on %d node(s), expires in "
                "%ss", done["fault_id"], text, len(nodes), args["ttl"])
    return {"fault_id": done["fault_id"], "nodes": nodes,
            "peers": sorted({d.peer for d in plan.degradations}),
            "direction": args["direction"], "netem": text,
            "ttl_seconds": float(args["ttl"]),
            "outcomes": done["outcomes"]}


def labelled_nodes(target: Target, topology, selector: str) -> list[Node]:
    """The nodes a label selector matches (SpecError if none)."""
    names = target.labelled(selector)
    if not names:
        raise SpecError(f"label selector {selector!r} matches no node; "
                        f"nothing was changed")
    return select(topology, "name:" + "|".join(names))


def plan_partition(target: Target, group: list[Node], peers: list[Node],
                   direction: str, mode: str, ports: list | None,
                   ttl: float, force: bool, topology,
                   fault_id: str, flap: Flap | None = None) -> FaultPlan:
    """The partition as data, with the refusals of the plan alone
    checked; changes nothing. Every address of each peer is cut (both
    families on a dual-stack cluster). Shared by the action and by
    `chaosk3s plan` (the dry run)."""
    cuts = [Cut(node=a.name, peer=b.name, peer_address=address,
                direction=direction, mode=mode,
                ports=tuple(int(p) for p in ports or ()))
            for a in group for b in peers if a.name != b.name
            for address in b.all_addresses]
    if not cuts:
        raise SpecError("the two groups leave no link to cut (they are the "
                        "same nodes); nothing was changed")
    check_partition_quorum(topology, cuts, force)
    return FaultPlan(run_id=fault_id, cuts=tuple(cuts),
                     ttl_seconds=float(ttl), flap=flap)


def fault_guard(target: Target, topology: Topology, what: str,
                nodes: list[str], down: dict | None = None,
                cuts: dict | None = None, force: bool = False) -> Check:
    """What a fault on nodes must pass inside the ledger's lock, with
    this run's open faults: the inventory's blast-radius caps
    (chaosk3s.blast; force does not lift them), then the cumulative
    quorum guard (unless force)."""
    quorum = quorum_check(target, topology, what, down, cuts, force)
    caps = target.inventory.caps

    def check(entries: list[dict]) -> None:
        check_blast(caps, topology, what, nodes, entries)
        if quorum is not None:
            quorum(entries)

    return check


def quorum_check(target: Target, topology: Topology, what: str,
                 down: dict | None = None, cuts: dict | None = None,
                 force: bool = False) -> Check | None:
    """The cumulative guard for a change, to run inside the ledger's lock
    (None when the change concerns no etcd member, or with force)."""
    base = EtcdState(members_of(topology))
    if force or not base.concerns(down or {}, cuts or {}):
        return None
    state = read_etcd_state(topology, target.transport, lambda n: (
        target.inventory.command(n.role, "etcd_health", n.name)))

    def check(entries: list[dict]) -> None:
        check_quorum(with_ledger(state, entries), what, down, cuts)

    return check


def _partition(target: Target, group: list[Node], peers: list[Node],
               direction: str, mode: str, ports: list | None, ttl: float,
               force: bool, topology: Topology,
               flap: Flap | None = None) -> dict:
    target.check_consent()
    run = current_run(target_config(target))
    plan = plan_partition(target, group, peers, direction, mode, ports, ttl,
                          force, topology, "pending", flap)
    validate_plan(plan)  # a schedule the ttl does not cover, before all
    nodes, peer_names = plan.nodes(), sorted({c.peer for c in plan.cuts})
    members = set(members_of(topology))
    pairs = [sorted(p) for p in cut_pairs(plan.cuts) if p <= members]
    check = fault_guard(target, topology, "this partition", nodes,
                        cuts={frozenset(p): "this partition"
                              for p in pairs}, force=force)
    done = run.session.partition(
        plan, [n for n in group if n.name in nodes], peer_names,
        f"{mode} {direction} between {', '.join(nodes)} and "
        f"{', '.join(peer_names)}", pairs, check)
    logger.info("partition %s applied on %d node(s), expires in %ss",
                done["fault_id"], len(nodes), ttl)
    return {"fault_id": done["fault_id"], "nodes": nodes,
            "peers": peer_names, "direction": direction, "mode": mode,
            "ttl_seconds": float(ttl), "outcomes": done["outcomes"]}


def target_config(target: Target) -> dict:
    return {"target": target.name}


@activity()
def heal_partitions(fault_id: str = "", configuration: dict = None) -> dict:
    """Remove the partitions and degraded links this run injected (or
    only `fault_id`).

    Idempotent: healing twice, or healing what already expired, is not an
    error. Every node is tried (a few times) whatever the others do; each
    is read back afterwards, and the action fails naming every fault and
    node whose rules or qdiscs are still active. Blast radius: restores
    links only.
    """
    run = current_run(configuration)
    report = run.session.heal(fault_id or None, kinds=LINK_KINDS,
                              by="heal_partitions")
    if not report.ok:
        raise ChaosK3sError("link faults still active after the heal: "
                            + "; ".join(report.lines()))
    _raise_if_expired(run.session.take_expired(
        LINK_KINDS, fault_id=fault_id or None), "heal_partitions")
    return {"healed": report.healed, "at": utc_now()}


def _raise_if_expired(entries: list[dict], action: str) -> None:
    """A fault the node's safety net ended before the run's own heal was
    held shorter than the experiment asked: the method did not run as
    written, so the action fails (and with it the run)."""
    if entries:
        raise ChaosK3sError(
            f"{action}: already expired on the node before {action} ran, "
            f"so it was held shorter than the experiment asked: " + "; ".join(
                f"fault {e['id']} ({e['description']}) at {e['ended_at']}"
                for e in entries) + "; raise the fault's ttl (fault_ttl) "
            "above the time the experiment holds it")


def _node_command(action: str, nodes: str, one_at_a_time: bool,
                  force: bool, configuration: dict | None,
                  timeout: float, duration: float = 0,
                  drain_timeout: float | None = None) -> dict:
    target = get_target(configuration)
    if action != "start":  # starting heals: it needs no consent
        target.check_consent()
    # Starting needs no API: it may be what brings the API back.
    topology = target.topology(wait=0 if action == "start" else 10)
    chosen = target.reachable(select(topology, nodes))
    run = current_run(configuration)
    done, expired = [], []
    names = sorted(n.name for n in chosen)
    # All at once: one guard for every node (each node's record adds it
    # to the ledger, which the next node's check sees anyway).
    at_once = None if one_at_a_time or action == "start" else fault_guard(
        target, topology, f"{action} of {', '.join(names)} at once", names,
        down=dict.fromkeys(names, f"this {action}"), force=force)
    for node in chosen:
        commands = run.session.ports.commands(node)
        if action == "start":
            evidence = run.session.start(node, commands, float(timeout))
            expired += run.session.take_expired(("stop",), node.name)
        else:
            check = at_once if not one_at_a_time else fault_guard(
                target, topology, f"{action} of {node.name}", [node.name],
                down={node.name: f"this {action}"}, force=force)
            drained = _cordon(run, target, topology, node, drain_timeout)
            evidence = run.session.node_fault(
                action, node, commands, float(timeout), check,
                start_after=_deadline(duration, configuration),
                back=one_at_a_time and action != "stop",
                self_start="duration" if float(duration) > 0 else
                "fault_ttl")
            if drained is not None:
                evidence = {**evidence, "drain": drained,
                            "uncordoned_at": _uncordon(run, drained)}
        logger.info("%s on %s: seen (%s)", action, node.name,
                    _summary(evidence))
        done.append({**evidence, "at": utc_now()})
    _raise_if_expired(expired, "start_k3s")  # every node started first
    return {"action": action, "nodes": done}


def _cordon(run, target: Target, topology: Topology, node: Node,
            drain_timeout: float | None) -> dict | None:
    """The maintenance form's start (drain_timeout given): the node
    cordoned and drained, within the blast-radius caps."""
    if drain_timeout is None:
        return None
    return run.session.cordon(node, float(drain_timeout), fault_guard(
        target, topology, f"cordon of {node.name}", [node.name]))


def _uncordon(run, drained: dict) -> str:
    """The maintenance form's end: the node, back, is uncordoned by the
    heal of its cordon (the one way a cordon ends)."""
    report = run.session.heal(drained["fault_id"], by="uncordon")
    if not report.ok:
        raise ChaosK3sError(f"{drained['node']} is still cordoned after "
                            f"its restart: " + "; ".join(report.lines()))
    return utc_now()


def _deadline(duration: float, configuration: dict | None) -> float:
    """When a stopped node starts K3s by itself: after `duration`, else
    after the run's fault ttl (configuration `fault_ttl`), else 300 s."""
    if float(duration) > 0:
        return float(duration)
    return float((configuration or {}).get("fault_ttl") or
                 DEFAULT_FAULT_TTL)


def _summary(evidence: dict) -> str:
    if "boot_id_after" in evidence:
        return (f"boot id {evidence['boot_id_before']} -> "
                f"{evidence['boot_id_after']}")
    before, after = evidence["before"], evidence["after"]
    return (f"MainPID {before['main_pid']} {before['active_state']} -> "
            f"{after['main_pid']} {after['active_state']}")


@activity(nodes=NODES, timeout=POSITIVE, drain_timeout=POSITIVE)
def restart_k3s(nodes: str = "agent", one_at_a_time: bool = True,
                force: bool = False, timeout: float = 120,
                configuration: dict = None, drain: bool = False,
                drain_timeout: float = 60) -> dict:
    """Restart the K3s service on the selected nodes (a group as in
    `partition_roles`). Uses the inventory's restart command (default
    `systemctl restart k3s` or `k3s-agent`), then reads the unit's state
    back from each node (its `status` command) until it runs as a new
    process (a new MainPID or start time); fails naming the node, the
    command, what was expected and what was seen if that does not show
    within `timeout` seconds. With `one_at_a_time` (the default) each
    node must also be back (K3s running, its etcd member healthy, the
    node Ready with a renewed Lease) within `timeout` before the next
    starts, and the quorum guard is checked before each node; without
    it, the guard counts every selected node down at once. The result
    carries the evidence (before and after).

    With `drain` (the operator's maintenance form; needs
    `one_at_a_time`), each node is first cordoned and drained with
    chaostoolkit-kubernetes (chaosk8s.node.actions.drain_nodes: pods
    that a controller other than a DaemonSet owns are evicted; an
    unmanaged pod fails the drain; `drain_timeout` seconds for the
    evicted pods to go), then restarted, then, once back, uncordoned.
    The cordon is a fault in the run's ledger, recorded before the
    drain: whatever stops the run, the control's cleanup or `chaosk3s
    cleanup` uncordons the node. A node that is already cordoned is
    refused (someone else's maintenance). Blast radius: the selected
    nodes' K3s processes; with `drain`, also their evicted pods."""
    if drain and not one_at_a_time:
        raise SpecError("restart_k3s: drain (the maintenance form) works "
                        "one node at a time; set one_at_a_time to true; "
                        "nothing was changed")
    return _node_command("restart", nodes, one_at_a_time, force,
                         configuration, timeout,
                         drain_timeout=drain_timeout if drain else None)


@activity(nodes=NODES, duration=NOT_NEGATIVE, timeout=POSITIVE)
def stop_k3s(nodes: str, duration: float = 0, force: bool = False,
             timeout: float = 120, configuration: dict = None) -> dict:
    """Stop K3s on the selected nodes and check, on each node, that the
    unit is inactive within `timeout` seconds. Each node is given a
    node-side start (the same timer mechanism partitions expire with)
    `duration` seconds after K3s is seen stopped, or, without one, the
    run's fault ttl (configuration `fault_ttl`, default 300 s): armed
    before the stop at that plus `timeout`, re-armed once it is seen
    stopped. K3s comes back even if the runner dies. `start_k3s`, the
    control's cleanup or `chaosk3s cleanup` start it sooner and cancel
    that timer. Refused if,
    with the faults already open, it would leave etcd without quorum.
    Rollback: `start_k3s`."""
    return _node_command("stop", nodes, False, force, configuration,
                         timeout, duration)


@activity(nodes=NODES, timeout=POSITIVE)
def start_k3s(nodes: str, timeout: float = 120,
              configuration: dict = None) -> dict:
    """Start K3s on the selected nodes (the rollback of `stop_k3s`) and
    check, on each node, that the unit is active and, on servers, serving
    (the inventory's `serving` command succeeds) within `timeout` s;
    then this run's stops of those nodes are closed and their node-side
    starts cancelled."""
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
    fails naming the node, command and what was seen otherwise. With
    `one_at_a_time` (the default) each node must also be back (K3s
    running, etcd member healthy, node Ready) within `timeout` before
    the next, and the quorum guard is checked before each. The result
    carries the boot ids before and after. Blast radius: whole
    machines."""
    return _node_command("reboot", nodes, one_at_a_time, force,
                         configuration, timeout)


@activity(nodes=NODES, version=K3S_VERSION, timeout=POSITIVE)
def upgrade_k3s(nodes: str, version: str, timeout: float = 300,
                force: bool = False, configuration: dict = None) -> dict:
    """Upgrade K3s on the selected nodes (a group as in
    `partition_roles`) to `version`, one node at a time, in name order:
    the inventory's `upgrade` command (no default: it must contain
    `{version}`), then, within `timeout` seconds, a new K3s process (its
    `status` command), the node back (K3s running, etcd member healthy,
    Ready with a renewed Lease) and the API's
    `status.nodeInfo.kubeletVersion` of the node at `version`, before
    the next node starts. Fails naming the node that did not rejoin, and
    upgrades no further node. Refused before any node is touched: a
    downgrade of any selected node or a jump over a minor release, or
    an inventory without an upgrade command. A node already at
    `version` is skipped (said in the result), so a roll run again goes
    on where it stopped. Each node passes the blast-radius caps and the
    quorum guard (an etcd member is down while it upgrades; `force`
    lifts the guard only) and is recorded in the ledger. The result has
    each node's version before and after. Blast radius: one node's K3s
    at a time."""
    target = get_target(configuration)
    target.check_consent()
    topology = target.topology()
    chosen = sorted(target.reachable(select(topology, nodes)),
                    key=lambda n: n.name)
    before = upgrade.kubelet_versions(target)
    upgrade.check_roll(chosen, before, version, target)
    run, done = current_run(configuration), []
    for node in chosen:
        row = {"node": node.name, "version_before": before.get(node.name)}
        if before.get(node.name) == version:
            logger.info("upgrade_k3s: %s already runs %s; skipped",
                        node.name, version)
            done.append({**row, "skipped": f"already at {version}",
                         "version_after": version, "at": utc_now()})
            continue
        done.append({**row, **_upgrade_one(target, topology, run, node,
                                           version, timeout, force)})
    return {"action": "upgrade", "version": version, "nodes": done}


def _upgrade_one(target: Target, topology: Topology, run, node: Node,
                 version: str, timeout: float, force: bool) -> dict:
    """One node's upgrade, proved: new process, back, at version."""
    started = time.monotonic()
    commands = upgrade.with_version(run.session.ports.commands(node),
                                    version)
    check = fault_guard(target, topology, f"upgrade of {node.name}",
                        [node.name], down={node.name: "this upgrade"},
                        force=force)
    evidence = run.session.node_fault("upgrade", node, commands,
                                      float(timeout), check, back=True)
    seen = upgrade.wait_version(target, node.name, version,
                                float(timeout) - (time.monotonic() -
                                                  started))
    logger.info("upgrade_k3s: %s at %s and Ready after %.1fs (%s)",
                node.name, version, time.monotonic() - started,
                _summary(evidence))
    return {**evidence, "version_after": seen["kubelet_version"],
            "rejoined_seconds": round(time.monotonic() - started, 3),
            "at": utc_now()}


@activity()
def write_marker(configuration: dict = None) -> dict:
    """Write a marker through the API before a fault: the ConfigMap
    kube-system/chaosk3s-marker, overwritten with this run's id and a
    fresh random token, then read back (the action fails if the read
    differs). `marker_readback` later compares the cluster's copy with
    what this returned. Blast radius: that one ConfigMap, left in place
    (each run overwrites it)."""
    target = get_target(configuration)
    target.check_consent()
    run = current_run(configuration)
    run.marker = markers.write(target.kube, run.run_id)
    logger.info("marker %s written (resourceVersion %s)",
                run.marker["configmap"], run.marker["resource_version"])
    return run.marker
