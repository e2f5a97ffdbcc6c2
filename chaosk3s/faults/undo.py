"""Undoing one fault on its nodes, for the FaultSession's heal walk.

Per kind: a partition's chain or a degradation's qdiscs (both named by
the fault's chain name) are removed (and the node timer cancelled) on
every node still open, then read back; a stopped, restarted or
rebooted K3s is started if it is not running, its node-side start
cancelled, then read back; a cordon is uncordoned through
chaostoolkit-kubernetes and read back from the API (chaosk3s.faults
.cordon). Each node's part is closed by the session's one rule (read
back gone), or noted open with why. Only a cordon needs the API: for
the rest the ledger entry says how to reach each node and which commands
start and read K3s (the inventory fills in for older entries).
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from chaosk3s.errors import INTERRUPTIONS, ChaosK3sError
from chaosk3s.faults import cordon, service
from chaosk3s.faults.apply import heal, read_active, setup_for
from chaosk3s.faults.partition import chain_name
from chaosk3s.faults.timers import (
    cancel_start_script,
    start_returned_at,
    started_script,
)
from chaosk3s.model import Node

if TYPE_CHECKING:  # the session calls in here; no import at run time
    from chaosk3s.faults.session import FaultSession

HEAL_START_BOUND = 60.0  # seconds a heal gives a stopped K3s to start
EXPIRED = "expired on the node"
# faults on links, healed first and alike (by their chain's name: the
# iptables chain of a partition, the tc qdiscs of a degradation)
LINK_KINDS = ("partition", "degradation")


@dataclass
class HealReport:
    """What a heal walk closed and what stays open (node by node)."""

    healed: list[str] = field(default_factory=list)
    open: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.open and not self.problems

    def lines(self) -> list[str]:
        return [f"still open: fault {o['fault_id']} ({o['kind']}) on "
                f"{o['node']}: {o['error']}" for o in self.open] + \
            [f"problem: {p}" for p in self.problems]

    def as_dict(self) -> dict:
        return {"healed": self.healed, "open": self.open,
                "problems": self.problems}


def journal_faults(entries: list[dict]) -> list[dict]:
    """Ledger entries as the journal shows them (no transports)."""
    return [{k: v for k, v in e.items() if k != "undo"} for e in entries]


def open_nodes(entry: dict) -> list[dict]:
    """The nodes an open entry is still open on, each with why."""
    if entry.get("ended_at"):
        return []
    errors = entry.get("errors") or {}
    return [{"fault_id": entry["id"], "kind": entry["kind"], "node": node,
             "error": errors.get(node, "not healed yet")}
            for node in entry.get("open_nodes", entry["nodes"])]


def heal_order(entries: list[dict]) -> list[dict]:
    """Links first (a node must be reachable to serve), then services,
    then cordons (an uncordon needs the API, and a node back before it
    takes work again); newest first within each, undoing in the reverse
    of the run."""
    newest = list(reversed(entries))
    return [e for e in newest if e["kind"] in LINK_KINDS] + \
        [e for e in newest if e["kind"] not in (*LINK_KINDS, cordon.KIND)] \
        + [e for e in newest if e["kind"] == cordon.KIND]


def iso_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def past(iso: str | None) -> bool:
    return bool(iso) and datetime.fromisoformat(iso) <= datetime.now(UTC)


def undo_target(session: "FaultSession", entry: dict,
                name: str) -> tuple[Node, dict[str, str]]:
    """How to reach node name and its commands, from the ledger (no API
    needed), else from the inventory."""
    record = (entry.get("undo") or {}).get(name)
    node = Node.from_record(record["node"]) if record else \
        session.ports.node(name)
    if node is None:
        raise ChaosK3sError(f"the ledger does not say how to reach {name} "
                            f"and the inventory lists no such node")
    commands = (record or {}).get("commands") or {}
    if not {"start", "status"} <= set(commands):
        commands = {**session.ports.commands(node), **commands}
    return node, commands


def heal_partition(session: "FaultSession", entry: dict, names: list[str],
                   by: str, read_only: bool) -> list[str]:
    """Remove the link fault's chain (iptables) or qdiscs (tc) on names
    (read_only: only read back); return the nodes still open."""
    transports, left = {}, []
    for name in names:
        if not session.attempt(entry, name, lambda name=name: (
                transports.update({name: session.ports.transport(
                    undo_target(session, entry, name)[0])}))):
            left.append(name)
    removed: set[str] = set()
    if not read_only:
        for outcome in heal(transports, entry["id"], session.state_dir,
                            strict=False):
            if outcome.removed:
                removed.add(outcome.node)
            if not outcome.ok:
                session.note(entry["id"], outcome.node, outcome.error)
    chain = chain_name(entry["id"])
    for outcome in read_active(transports, session.state_dir, strict=False):
        if not outcome.ok:
            session.note(entry["id"], outcome.node, outcome.error)
        elif any(f.chain == chain for f in outcome.active):
            session.note(entry["id"], outcome.node,
                         f"{entry['kind']} {chain} still active after "
                         f"the heal")
        else:
            expired = outcome.node not in removed and not read_only and \
                past(entry.get("expires_at"))
            _closed(session, entry, outcome.node, by, expired)
            continue
        left.append(outcome.node)
    return left


def heal_service(session: "FaultSession", entry: dict, name: str, by: str,
                 read_only: bool = False,
                 started_at: str | None = None) -> None:
    """Start K3s on name if it is not running (read_only: only read it),
    cancel a stop's node-side start once it runs, and close; raise if
    it does not run. started_at: when the caller saw the K3s it has just
    started itself running. The part ends when K3s was confirmed
    running: by whoever started it, or, for a stop that expired, when
    the node-side start returned (its log; else the timer's deadline)."""
    node, commands = undo_target(session, entry, name)
    transport = session.ports.transport(node)
    state = service.read_status(transport, commands["status"])
    if not state.running and not read_only:
        started_at = service.start(transport, commands, HEAL_START_BOUND,
                                   server=False)["confirmed_at"]
        state = service.read_status(transport, commands["status"])
    if not state.running:
        raise ChaosK3sError(f"k3s on {name} is not running ({state})")
    expired = False
    if entry["kind"] == "stop" and started_at is None:
        # The node's own log says whether its start ran; the deadline,
        # in whole seconds, lags the timer by up to one.
        by_node = _started_by_node(session, transport, entry)
        expired = by_node is not None or past(entry.get("expires_at"))
        started_at = by_node or (entry.get("expires_at") if expired
                                 else None)
    if entry["kind"] == "stop":
        transport.run(cancel_start_script(
            setup_for(transport, session.state_dir), entry["id"]),
            timeout=30, description=f"cancel the node-side start of {name}")
    session.close_node(entry["id"], name, EXPIRED if expired else by,
                       started_at)


def heal_cordon(session: "FaultSession", entry: dict, name: str, by: str,
                read_only: bool = False) -> None:
    """Uncordon name (read_only: only read it back) and close its part
    once the API shows it schedulable; raise while it is cordoned."""
    cordon.undo(session.ports.api(), name, read_only)
    session.close_node(entry["id"], name, by)


def _started_by_node(session: "FaultSession", transport,
                     entry: dict) -> str | None:
    """When the node-side start of a stop returned, from its log."""
    out = transport.run(started_script(
        setup_for(transport, session.state_dir), entry["id"]),
        timeout=30, check=False, description="when the node started k3s")
    return start_returned_at(out.stdout) if out.ok else None


def settle_expired(session: "FaultSession", entry: dict) -> None:
    """A stop or partition past its deadline: read its nodes back (only)
    and close each part the node's own timer already ended. Notes
    nothing: a part still there only means the timer has not fired yet
    (it fires at int(ttl)+1 s after the apply), and it keeps counting."""
    names = list(entry.get("open_nodes", entry["nodes"]))
    if entry["kind"] == "stop":
        for name in names:
            try:
                heal_service(session, entry, name, EXPIRED, read_only=True)
            except INTERRUPTIONS:
                raise  # a signal's (SIGTERM): not the node's (errors.py)
            except Exception:  # noqa: BLE001 - only a read: not running
                continue  # or not readable, the stop keeps counting
        return
    transports = {}
    for name in names:
        try:
            transports[name] = session.ports.transport(
                undo_target(session, entry, name)[0])
        except INTERRUPTIONS:
            raise  # a signal's (SIGTERM): not the node's (errors.py)
        except Exception:  # noqa: BLE001 - unreadable: it keeps counting
            continue
    chain = chain_name(entry["id"])
    for outcome in read_active(transports, session.state_dir, strict=False):
        if outcome.ok and not any(f.chain == chain for f in outcome.active):
            _closed(session, entry, outcome.node, EXPIRED, True)


def _closed(session: "FaultSession", entry: dict, node: str, by: str,
            expired: bool) -> None:
    """Close node's part; when the node's own timer ended it, say so and
    date it at the timer's deadline."""
    session.close_node(entry["id"], node, EXPIRED if expired else by,
                       entry.get("expires_at") if expired else None)
