"""One owner of a run's faults: record, apply, heal, close.

Every fault of a run goes through its FaultSession; activities, the
control's cleanup and SIGTERM path and `chaosk3s cleanup` all call it.

- Record before apply: the ledger entry, with what undoing it needs (each
  node's addresses and transport, its start and status commands), is
  written and fsynced before the first command reaches a node. The
  quorum guard runs inside the same ledger lock, so two activities at
  once cannot both pass it.
- Every node fault expires on the node: partitions by their chain's
  timer, a stop by a node-side start at a deadline (chaosk3s.faults
  .timers), cancelled when the run starts K3s itself.
- One closing rule: a node's part of a fault is closed only when the node
  itself reads back that it is gone (no chain of the fault; the K3s unit
  running again), or when nothing that could change it was ever sent
  (NOT_APPLIED); the fault ends when no node is left open. Whatever an
  action raises, what reads back gone is closed.
- A cordon (with its drain) lives in the API, not on a node: it cannot
  expire by itself; its heal (an uncordon) needs an API server, and runs
  after the links and services are healed.
- One heal walk: every open fault, links first, then K3s services, then
  cordons, newest first within each; per fault per node, with bounded
  retries; nothing one node, fault or malformed entry does stops the
  rest, nor does a Ctrl-C, SystemExit or SIGTERM (chaosk3s.errors
  .INTERRUPTIONS: kept, and raised once the walk is done); what stays
  open, on which node and why, is the report.
- Apply and heal are serialized (faults/serial.py): a heal waits for
  applies in flight (an apply that lands after a heal began is healed
  too), applies wait for a heal, and once closed (SIGTERM, cleanup)
  nothing new is applied. A
  heal must not be started from the thread of an apply in flight (a
  signal handler): it would wait for itself; the control heals in a
  thread of its own. Node commands run in a worker thread, so a
  signal's exception in the caller's thread cannot end the apply
  before the command it sent has returned.
"""

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Protocol

from chaosk3s.errors import INTERRUPTIONS, ChaosK3sError
from chaosk3s.faults import cordon, service
from chaosk3s.faults.apply import FaultError, apply_plan
from chaosk3s.faults.node_work import NodeWork, on_the_node
from chaosk3s.faults.partition import DEFAULT_STATE_DIR
from chaosk3s.faults.serial import Serial
from chaosk3s.faults.undo import (
    EXPIRED,
    LINK_KINDS,
    HealReport,
    heal_cordon,
    heal_order,
    heal_partition,
    heal_service,
    iso_in,
    open_nodes,
    past,
    settle_expired,
)
from chaosk3s.kube import Kube
from chaosk3s.ledger import Ledger
from chaosk3s.model import FaultPlan, Node
from chaosk3s.readiness import utc_now
from chaosk3s.transports.base import Transport

logger = logging.getLogger("chaostoolkit")
APPLY_WAIT = 900.0  # seconds a heal waits at most for applies in flight
ATTEMPTS = 3  # per fault per node, in one heal walk
RETRY_DELAY = 1.0  # seconds, times the attempt number
SERVICE_KINDS = ("stop", "restart", "reboot", "upgrade")
NOT_APPLIED = "not applied (its command never reached the node)"
Check = Callable[[list[dict]], None]


class Ports(Protocol):
    """What the session reaches the world through (a target, or a test's
    recording transports)."""

    def transport(self, node: Node) -> Transport: ...

    def node(self, name: str) -> Node | None: ...

    def commands(self, node: Node) -> dict[str, str]: ...

    def readiness_mark(self, node: str) -> object: ...

    def ready_since(self, node: str, mark: object) -> bool: ...

    def api(self) -> Kube: ...


class FaultSession:
    """The faults of one run (one ledger)."""

    def __init__(self, ledger: Ledger, ports: Ports,
                 state_dir: str = DEFAULT_STATE_DIR,
                 attempts: int = ATTEMPTS,
                 retry_delay: float = RETRY_DELAY):
        self.ledger, self.ports, self.state_dir = ledger, ports, state_dir
        self.attempts, self.retry_delay = attempts, retry_delay
        self._serial = Serial()
        self._walker: int | None = None  # the thread of the heal walk
        self._interrupt: BaseException | None = None  # kept for its end

    # -- serialization (chaosk3s.faults.serial) --------------------------
    def _applying(self, healing_op: bool = False
                  ) -> AbstractContextManager[None]:
        return self._serial.applying(healing_op)

    def _exclusive(self) -> AbstractContextManager[None]:
        return self._serial.exclusive(APPLY_WAIT)

    @property
    def closed(self) -> bool:
        return self._serial.closed

    def close(self) -> None:
        """Refuse new faults from now on (heals still run)."""
        self._serial.close()

    # -- recording -------------------------------------------------------
    def _entry(self, kind: str, nodes: list[Node], description: str,
               commands: dict[str, dict[str, str]] | None = None,
               **extra: object) -> dict:
        names = sorted(n.name for n in nodes)
        undo = {n.name: {"node": n.as_record(), "commands": {
            k: v for k, v in (commands or {}).get(n.name, {}).items()
            if k in ("start", "status")}} for n in nodes}
        return {"kind": kind, "nodes": names, "description": description,
                "started_at": utc_now(), "ended_at": None,
                "open_nodes": names, "errors": {}, **extra, "undo": undo}

    def close_node(self, fault_id: str, node: str, by: str,
               when: str | None = None) -> dict:
        """The one closing rule: node's part is gone (read back)."""
        def change(entry: dict) -> dict:
            still = [n for n in entry.get("open_nodes", entry["nodes"])
                     if n != node]
            errors = {n: e for n, e in (entry.get("errors") or {}).items()
                      if n != node}
            done = {"ended_at": when or utc_now(), "healed_by": by} \
                if not still and not entry.get("ended_at") else {}
            return {**entry, "open_nodes": still, "errors": errors, **done}
        return self.ledger.update(fault_id, change)

    def _close_expired(self) -> None:
        """Before a guard and cap check: this run's open stops and
        link faults past their deadline are read back, and what their
        node already ended is closed (as expired), so it no longer
        counts against the next fault."""
        for entry in self.ledger.open_faults():
            if entry["kind"] in (*LINK_KINDS, "stop") and \
                    past(entry.get("expires_at")):
                settle_expired(self, entry)

    def note(self, fault_id: str, node: str, error: str) -> None:
        self.ledger.update(fault_id, lambda e: {**e, "errors": {
            **(e.get("errors") or {}), node: error}})

    # -- applying --------------------------------------------------------
    def partition(self, plan: FaultPlan, nodes: list[Node], peers: list[str],
                  description: str, etcd_cuts: list[list[str]],
                  check: Check | None = None,
                  kind: str = "partition") -> dict:
        """Record, then apply plan (its run_id is replaced by the fault
        id) on nodes, all or none. kind: ``partition`` (cuts) or
        ``degradation`` (tc netem). Returns the outcomes for the
        journal."""
        with self._applying():
            self._close_expired()
            fault_id = self.ledger.add(self._entry(
                kind, nodes, description, peers=peers,
                ttl_seconds=plan.ttl_seconds, etcd_cuts=etcd_cuts,
                expires_at=iso_in(plan.ttl_seconds)), check)
            plan = replace(plan, run_id=fault_id)
            transports = {n.name: self.ports.transport(n) for n in nodes}
            try:
                outcomes = apply_plan(plan, transports, self.state_dir)
            except Exception as exc:
                self._settle(fault_id, "apply failed")
                if isinstance(exc, FaultError) or \
                        not isinstance(exc, ChaosK3sError):
                    raise
                raise ChaosK3sError(f"{kind} {fault_id}: {exc}") from exc
            # Every node's timer was armed by now: from here, a past
            # deadline means it fired (before the apply, it may not have).
            self.ledger.update(fault_id, applied_at=utc_now(),
                               expires_at=iso_in(plan.ttl_seconds))
            return {"fault_id": fault_id, "outcomes": [
                o.as_dict() for o in outcomes]}

    def node_fault(self, action: str, node: Node, commands: dict[str, str],
                   bound: float, check: Check | None = None,
                   start_after: float | None = None,
                   back: bool = False, self_start: str = "fault_ttl"
                   ) -> dict:
        """Record, then stop, restart, reboot or upgrade K3s on node and
        prove it (chaosk3s.faults.service). A stop first arms the
        node-side start at start_after seconds (self_start: "duration"
        when that end was asked for, "fault_ttl" when it is only the
        safety net). back:
        then wait, within bound, for the node to be back (K3s running,
        its etcd member healthy, the node Ready) before returning."""
        description = f"{action} k3s on {node.name}"
        extra = {"etcd_down": [node.name] if node.runs_etcd else []}
        if action == "stop":  # the safety net's, until the node says
            extra.update(expires_at=iso_in(float(start_after or 0) + bound),
                         self_start=self_start)
        with self._applying():
            self._close_expired()
            fault_id = self.ledger.add(self._entry(
                action, [node], description, {node.name: commands},
                **extra), check)
            work = NodeWork(action, node, self.ports.transport(node),
                            commands, bound, fault_id, self.state_dir,
                            armed=lambda until: self.ledger.update(
                                fault_id, expires_at=until))
            try:
                evidence = on_the_node(lambda: work.run(
                    start_after, back, self.ports))
            except Exception:
                if not work.issued:  # nothing reached the node
                    self.close_node(fault_id, node.name, NOT_APPLIED)
                else:  # whatever it was, what reads back gone is closed
                    self._settle(fault_id, f"{action} failed")
                raise
            if action != "stop":
                self._settle(fault_id, "seen back")
                self._date_back(fault_id, evidence)
            return {**evidence, "fault_id": fault_id}

    def cordon(self, node: Node, drain_timeout: float,
               check: Check | None = None) -> dict:
        """Record, then cordon and drain node through chaostoolkit-
        kubernetes (chaosk3s.faults.cordon). A node already cordoned is
        refused (someone else's maintenance). If the drain fails, what
        reads back schedulable is closed; a node left cordoned stays
        open for the heal (uncordon). Returns the drain's evidence."""
        kube = self.ports.api()
        with self._applying():
            cordon.refuse_if_cordoned(kube, node.name)
            fault_id = self.ledger.add(self._entry(
                cordon.KIND, [node], f"cordon and drain {node.name}"),
                check)
            try:
                evidence = on_the_node(lambda: cordon.drain(
                    kube, node.name, drain_timeout))
            except Exception as exc:
                self._settle(fault_id, "drain failed")
                if isinstance(exc, INTERRUPTIONS):  # a SIGTERM: the drain
                    raise  # itself ran to its end (on_the_node)
                raise ChaosK3sError(f"cordon {fault_id}: the drain of "
                                    f"{node.name} failed: {exc}") from exc
            self.ledger.update(fault_id, applied_at=evidence["drained_at"],
                               evicted=evidence["evicted"])
            return {**evidence, "fault_id": fault_id}

    def _date_back(self, fault_id: str, evidence: dict) -> None:
        """A restart or reboot seen back ended when it was confirmed
        running (the new process; the new boot), not when read back."""
        when = evidence.get("confirmed_at") or evidence.get("back_at")
        self.ledger.update(fault_id, lambda e: {**e, "ended_at": when}
                           if e.get("healed_by") == "seen back" and when
                           else e)

    def start(self, node: Node, commands: dict[str, str],
              bound: float) -> dict:
        """Start K3s on node (proved running, and serving on servers),
        then close this run's service faults on it and cancel their
        node-side starts. Allowed after close(): it heals. A stop past
        its deadline that K3s was found running after is closed as
        expired on the node (see take_expired)."""
        with self._applying(healing_op=True):
            transport = self.ports.transport(node)
            evidence = service.start(transport, commands, bound,
                                     server=node.role != "agent")
            was_running = service.ServiceState(
                **evidence["before"]).running
            closed = []
            for entry in self.ledger.open_faults():
                if entry["kind"] in SERVICE_KINDS and \
                        node.name in entry.get("open_nodes", []):
                    heal_service(self, entry, node.name, "start_k3s",
                                 started_at=None if was_running else
                                 evidence["confirmed_at"])
                    closed.append(entry["id"])
            return {**evidence, "closed_faults": closed}

    def take_expired(self, kinds: tuple[str, ...], node: str | None = None,
                     fault_id: str | None = None) -> list[dict]:
        """This run's faults of kinds (on node, or fault_id) that the
        node's safety net ended before the run's own heal, not yet
        reported: each is returned once, then marked reported. A stop
        whose `duration` asked for its end is not among them."""
        found = [e for e in self.ledger.entries()
                 if e.get("healed_by") == EXPIRED and e["kind"] in kinds
                 and not e.get("expiry_reported")
                 and e.get("self_start") != "duration"
                 and (node is None or node in e["nodes"])
                 and (fault_id is None or e["id"] == fault_id)]
        for entry in found:
            self.ledger.update(entry["id"], expiry_reported=True)
        return found

    # -- healing ---------------------------------------------------------
    def heal(self, fault_id: str | None = None,
             kinds: tuple[str, ...] | None = None,
             by: str = "cleanup") -> HealReport:
        """One walk over this run's open faults (or one, or some kinds):
        links first, then services, newest first; per node, retried."""
        with self._exclusive():
            entries = [e for e in self.ledger.entries()
                       if not e.get("ended_at")
                       and (fault_id is None or e["id"] == fault_id)
                       and (kinds is None or e["kind"] in kinds)]
            report = HealReport()
            self._walker, self._interrupt = threading.get_ident(), None
            try:
                for entry in heal_order(entries):
                    self._walk_one(entry, by, report)
            finally:
                self._walker = None
            after = {e["id"]: e for e in self.ledger.entries()}
            for entry in (after.get(e["id"], e) for e in entries):
                if entry.get("ended_at"):
                    report.healed.append(entry["id"])
                    continue
                report.open += open_nodes(entry)
            for line in report.lines():
                logger.error("chaosk3s: %s", line)
            if self._interrupt is not None:
                raise self._interrupt  # now that the walk is done
            return report

    def _walk_one(self, entry: dict, by: str, report: HealReport) -> None:
        """Heal one entry; nothing it raises stops the walk. An
        interruption (a second Ctrl-C, SystemExit) is kept and raised
        by heal() once every entry was tried."""
        try:
            self._heal_entry(entry, by)
        except INTERRUPTIONS as exc:  # first: SIGTERM's is an Exception
            self._interrupted(exc)
            report.problems.append(f"fault {entry.get('id')}: interrupted "
                                   f"({type(exc).__name__}) mid-heal")
        except Exception as exc:  # noqa: BLE001 - one fault's trouble
            # (a malformed entry) never stops the others
            report.problems.append(f"fault {entry.get('id')}: "
                                   f"{type(exc).__name__}: {exc}")

    def _interrupted(self, exc: BaseException) -> None:
        """Keep an interruption for the end of this thread's walk; raise
        it at once anywhere else (an apply's settling)."""
        if self._walker != threading.get_ident():
            raise exc
        logger.warning("chaosk3s: %s during the heal; finishing the heal "
                       "first", type(exc).__name__)
        self._interrupt = self._interrupt or exc

    def _settle(self, fault_id: str, by: str) -> None:
        """After an apply failed or finished: close what reads back gone."""
        entry = next((e for e in self.ledger.entries()
                      if e["id"] == fault_id), None)
        if entry is not None and not entry.get("ended_at"):
            self._heal_entry(entry, by, attempts=1, read_only=True)

    def _heal_entry(self, entry: dict, by: str, attempts: int | None = None,
                    read_only: bool = False) -> None:
        left = list(entry.get("open_nodes", entry["nodes"]))
        for attempt in range(1, (attempts or self.attempts) + 1):
            try:  # an interruption costs this try, not the walk
                if entry["kind"] in LINK_KINDS:
                    left = heal_partition(self, entry, left, by, read_only)
                else:
                    undo = heal_cordon if entry["kind"] == cordon.KIND \
                        else heal_service
                    left = [n for n in left
                            if not self.attempt(entry, n, lambda n=n, u=undo: (
                                u(self, entry, n, by, read_only)))]
                if not left or attempt == (attempts or self.attempts):
                    return
                time.sleep(self.retry_delay * attempt)
            except INTERRUPTIONS as exc:
                self._interrupted(exc)

    def attempt(self, entry: dict, node: str, work: Callable[[], None]) -> bool:
        try:
            work()
            return True
        except INTERRUPTIONS as exc:  # first: SIGTERM's is an Exception
            self._interrupted(exc)
            self.note(entry["id"], node, f"interrupted ({type(exc).__name__})"
                                         f" mid-heal; retried")
            return False
        except Exception as exc:  # noqa: BLE001 - a node's failure is
            # reported and the walk goes on to every other node and fault
            self.note(entry["id"], node, f"{type(exc).__name__}: {exc}"
                       if not isinstance(exc, ChaosK3sError) else str(exc))
            return False
