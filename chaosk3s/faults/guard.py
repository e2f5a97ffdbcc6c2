"""What the quorum guard knows, gathered: etcd members, and what already
keeps them from voting or from reaching each other.

Three sources, so the guard is cumulative across activities and runs:
- this run's open faults, from its ledger (each entry says which members
  it takes down, ``etcd_down``, and which member pairs it cuts,
  ``etcd_cuts``); read inside the ledger's lock, so two activities at
  once cannot both pass the guard;
- other runs' faults, read back from the members themselves: chaosk3s
  chains that cut another member, and node-side start timers of a
  stopped K3s;
- the members' live health (the inventory's `etcd_health` command). A
  member that cannot be read at all counts as down: the guard cannot
  know otherwise, and it errs on the side of refusing (force overrides).
"""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from chaosk3s.errors import ChaosK3sError
from chaosk3s.faults.apply import read_active
from chaosk3s.faults.readback import ActiveFault
from chaosk3s.faults.service import member_health
from chaosk3s.model import Node, Topology
from chaosk3s.safety import ETCD_PEER_PORT, EtcdState, members_of
from chaosk3s.transports.base import Transport


def ledger_effects(entries: list[dict]) -> tuple[dict, dict]:
    """(down, cuts) that this run's open faults cause to etcd."""
    down, cuts = {}, {}
    for entry in entries:
        if entry.get("ended_at"):
            continue
        for member in entry.get("etcd_down") or []:
            down.setdefault(member, f"{entry['kind']}, fault {entry['id']}"
                                    f" of this run")
        for pair in entry.get("etcd_cuts") or []:
            cuts.setdefault(frozenset(pair), f"fault {entry['id']} of this "
                                             f"run")
    return down, cuts


def with_ledger(state: EtcdState, entries: list[dict]) -> EtcdState:
    down, cuts = ledger_effects(entries)
    return state.plus(down, cuts)


def read_etcd_state(topology: Topology,
                    transport: Callable[[Node], Transport],
                    health_command: Callable[[Node], str]) -> EtcdState:
    """Members' live health and other runs' faults, read from the
    members (in parallel; every member is read even if one fails)."""
    members = [n for n in topology.nodes if n.runs_etcd]
    if not members:
        return EtcdState(())
    reachable = [m for m in members if m.access is not None]
    down: dict[str, str] = {m.name: "no transport to read it"
                            for m in members if m.access is None}
    with ThreadPoolExecutor(max(1, len(reachable))) as pool:
        health = dict(zip([m.name for m in reachable], pool.map(
            lambda m: _health(transport(m), health_command(m)), reachable),
            strict=True))
    for name, problem in health.items():
        if problem:
            down.setdefault(name, problem)
    active = read_active({m.name: transport(m) for m in reachable},
                         strict=False)
    cuts: dict[frozenset, str] = {}
    names = _names_by_address(topology)
    for outcome in active:
        if not outcome.ok:
            down.setdefault(outcome.node, f"cannot read its faults: "
                                          f"{outcome.error}")
        for fault in outcome.active:
            _note(fault, names, down, cuts)
    return EtcdState(members_of(topology), down, cuts)


def _health(transport: Transport, command: str) -> str | None:
    """None when healthy, else why not."""
    try:
        healthy, seen = member_health(transport, command)
    except ChaosK3sError as exc:
        return f"cannot read its health: {exc}"
    return None if healthy else f"unhealthy: {seen[:120]}"


def _names_by_address(topology: Topology) -> dict[str, str]:
    return {address: n.name for n in topology.nodes
            for address in n.all_addresses}


def _note(fault: ActiveFault, names: dict[str, str], down: dict,
          cuts: dict) -> None:
    owner = f"fault {fault.run_id or fault.chain}, read on {fault.node}"
    if fault.kind == "stop":
        if fault.timer is not None and fault.timer.alive:
            down.setdefault(fault.node, f"stopped ({owner}; starts by "
                                        f"itself at {fault.timer.expires_at}"
                                        f")")
        return
    for cut in fault.cuts:
        if cut.ports and ETCD_PEER_PORT not in cut.ports:
            continue  # etcd's own traffic passes
        peer = cut.peer or names.get(cut.peer_address)
        if peer and peer != fault.node:
            cuts.setdefault(frozenset((fault.node, peer)), owner)
    for link in fault.links:  # degraded counts as cut, as the actions do
        peer = link.peer or names.get(link.peer_address)
        if peer and peer != fault.node:
            cuts.setdefault(frozenset((fault.node, peer)), owner)
