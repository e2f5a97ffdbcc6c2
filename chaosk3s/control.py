"""The chaosk3s control: safety and evidence around a Chaos Toolkit run.

- Refuses the run before the steady state is checked, with nothing
  injected and nothing started, when a `--var` names no configuration
  key or a chaosk3s activity has an argument it cannot use (see
  chaosk3s.experiment_check); then when the cluster has not consented
  to chaos, is not the inventory's, has its abort switch set or is not
  on the allowed list (chaosk3s.consent, read from the API), a node
  selector matches no node, or a step is over the inventory's
  blast-radius caps (chaosk3s.blast). The journal's `chaosk3s.refused`
  says why; `chaos run` exits 1.
- Starts the lab when the target is `lab` and none is up (and takes it
  down afterwards if it started it).
- Marks a run whose chaosk3s method or rollback activity raised as
  "failed" (`chaosk3s.failed_activities` names them; see
  chaosk3s.outcome for the Chaos Toolkit default this overrides).
- Watches node readiness for the whole run and writes it, with every
  fault, into journal.json under the `chaosk3s` key.
- Writes the journal-so-far when the experiment starts, after each
  activity and whenever a fault is recorded, so a killed run still leaves
  a partial journal (atomically, fsynced). The final journal is Chaos
  Toolkit's to write, with a plain open(path, "w"): not atomic, not
  fsynced; the ledger is the durable record.
- Heals everything the run injected in `cleanup_control`, whatever the
  rollback strategy and however the run ended, through the run's
  FaultSession (best effort per fault and node; Ctrl-C is ignored while
  it heals); what stays open is in
  the journal (`chaosk3s.open_faults`) and the log. On SIGTERM it stops
  new faults and heals at once, in a thread that waits for an apply in
  flight to land first.
- Keeps secrets out of every artefact of the run (chaosk3s.redact): the
  journal and partial journals are redacted with the run's own secrets
  (its resolved `secrets` block and secret-named configuration values),
  so are the run's log handlers from configure on; the journal and the
  log files are readable by their owner only (0600).
- Watches the cluster's abort switch while the run lasts (chaosk3s.abort):
  when it is set, does what SIGTERM does and ends the running activity
  through Chaos Toolkit's graceful exit; `chaosk3s.aborted` says who set
  it, when and why.
- Leaves the run's record in the cluster: Events on the nodes its faults
  acted on (chaosk3s.events), labelled with `chaosk3s.run_id`.
- Keeps, when the run ends, the API's NodeNotReady/NodeReady Events
  (chaosk3s.node_events) and each node's own log around its
  transitions (chaosk3s.node_logs) in the journal: read after the
  cleanup heal, so that neither delays it.
- Never lets an API that hangs hold up the rollbacks or the cleanup
  heal for more than one bounded read (chaosk3s.kube.BOUNDED_SECONDS):
  the fresh read of the nodes at the steady state after the method (or
  at the run's end, when it never got there) is one try per context
  without retries; when it does not answer in time, `recovered` is
  judged on the readiness watch's last view and the section says so
  (`final_source`, `final_error`).

Add it to an experiment as
``{"name": "chaosk3s", "provider": {"type": "python",
"module": "chaosk3s.control"}}``.
"""

import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from chaoslib.exceptions import InterruptExecution
from chaoslib.exit import exit_gracefully

from chaosk3s import journal_section, outcome
from chaosk3s.cluster_link import ClusterLink
from chaosk3s.consent import describe_abort
from chaosk3s.errors import INTERRUPTIONS, ChaosK3sError, SpecError
from chaosk3s.experiment_check import (
    check_arguments,
    check_blast_radius,
    check_selectors,
    check_variables,
    command_line_variables,
)
from chaosk3s.faults.undo import journal_faults, open_nodes
from chaosk3s.files import owner_only, write_atomically
from chaosk3s.node_events import read_node_events
from chaosk3s.node_logs import read_node_logs
from chaosk3s.readiness import ReadinessWatch, utc_now
from chaosk3s.redact import Redactor, for_experiment, redact_journal
from chaosk3s.redact_logs import protect_logs
from chaosk3s.run import begin_run, end_run
from chaosk3s.safe_cleanup import heal_run
from chaosk3s.target import (
    forget_targets,
    get_target,
    is_lab_target,
    target_name,
)

logger = logging.getLogger("chaostoolkit")


class _State:
    """What the control keeps between hooks of one run."""

    def __init__(self):
        self.problem: str | None = None  # why the run is refused
        self.configuration: dict = {}
        self.secrets: dict = {}
        self.lab: dict | None = None
        self.started_lab: str | None = None  # the lab's name
        self.watch: ReadinessWatch | None = None
        self.run = None
        self.partial: dict = {}
        self.journal_path = _journal_path()
        self.nodes_at_start: dict = {}
        self.interrupted = False
        # the nodes at the steady state after the method, when and where
        # from (a fresh read, or the readiness watch's view)
        self.final: journal_section.FinalView | None = None
        self.redactor = Redactor()
        self.journal: dict | None = None  # chaos's own, to amend at cleanup
        self.healer: threading.Thread | None = None  # SIGTERM, abort
        self.cleaning = False  # cleanup heals now: no healer thread
        self.link: ClusterLink | None = None  # abort watch and Events
        self.ending = False  # after the experiment: no abort signal


_state: _State | None = None
# SIGTERM and the abort watch may race. Reentrant: SIGTERM's handler
# takes it in the main thread, which may hold it already (cleanup).
_heal_lock = threading.RLock()


def configure_control(configuration: dict = None, secrets: dict = None,
                      settings: dict = None, experiment: dict = None,
                      **_kwargs) -> None:
    """Never raises (Chaos Toolkit would silently drop the control);
    problems are raised as InterruptExecution before the experiment."""
    global _state
    _state = _State()
    _state.configuration = dict(configuration or {})
    _state.secrets = dict(secrets or {})
    _heal_on_sigterm()
    try:
        # First: nothing may be logged or written before it is redacted.
        _state.redactor = for_experiment(experiment, secrets, configuration)
        protect_logs(_state.redactor)
        _check_input(_state.configuration, _state.secrets, experiment or {})
        _prepare(_state.configuration, experiment or {})
    except ChaosK3sError as exc:
        _state.problem = str(exc)
    except Exception as exc:  # noqa: BLE001 - reported, not swallowed
        _state.problem = f"{type(exc).__name__}: {exc}"


def _check_input(configuration: dict, secrets: dict,
                 experiment: dict) -> None:
    """What needs no cluster, checked before the lab or anything starts:
    one line per problem."""
    explicit, from_files = command_line_variables()
    problems, warnings = check_variables(experiment, explicit, from_files)
    for warning in warnings:
        logger.warning("chaosk3s: %s", warning)
    problems += check_arguments(experiment, configuration, secrets)
    if problems:
        raise SpecError("\n".join(problems))


def _prepare(configuration: dict, experiment: dict) -> None:
    name = target_name(configuration)
    if is_lab_target(name):
        from chaosk3s.lab_control import ensure_lab, lab_facts  # optional
        _state.started_lab = ensure_lab(configuration)
        _state.lab = lab_facts(configuration)
    target = get_target(configuration)
    target.check_consent()
    topology = target.topology()
    problems = check_selectors(experiment, configuration, _state.secrets,
                               topology) or check_blast_radius(
        experiment, configuration, _state.secrets, topology,
        target.inventory.caps, target.labelled)
    if problems:
        raise SpecError("\n".join(problems))
    _state.run = begin_run(name)
    _state.link = ClusterLink(target, _state.run.run_id, _on_abort).open()
    _state.run.ledger.on_change = _ledger_changed
    _state.nodes_at_start = {n.name: n for n in topology.nodes}
    _state.watch = ReadinessWatch(target.kube).start()
    _state.partial = {"chaoslib-version": None, "experiment": experiment,
                      "start": utc_now(), "run": [], "rollbacks": [],
                      "steady_states": {"before": None, "after": None,
                                        "during": []}}
    logger.info("chaosk3s: run %s against %s (%d nodes, %d at risk)",
                _state.run.run_id, name, len(_state.nodes_at_start),
                len(topology.at_risk()))


def before_experiment_control(context: dict, **_kwargs) -> None:
    if _state is None:
        raise InterruptExecution("chaosk3s control was not configured")
    if _state.problem:
        raise InterruptExecution(
            "chaosk3s refused to run (nothing was injected):\n"
            + "\n".join(f"  {line}" for line in
                        _state.problem.splitlines()))
    _write_partial()


def before_activity_control(context: dict, **_kwargs) -> None:
    """After SIGTERM nothing more is injected: the run is aborted. A
    refused run runs nothing, not even its rollbacks (the strategy
    `always` would play them after the refusal)."""
    if _state is not None and _state.problem:
        raise InterruptExecution("chaosk3s: the run was refused; nothing "
                                 "runs")
    if _state is not None and _state.run is not None and context in (
            _state.partial.get("experiment") or {}).get("method", []):
        _state.run.method_started = True
    if _state is not None and _state.interrupted:
        raise InterruptExecution("chaosk3s: SIGTERM received; faults were "
                                 "healed, aborting the run")
    if _state is not None and _aborted():
        raise InterruptExecution(
            f"chaosk3s: the cluster's abort switch is set ("
            f"{describe_abort(_aborted())}); faults were healed, aborting "
            f"the run")


def _aborted() -> dict | None:
    return _state.link.aborted if _state.link is not None else None


def _heal_on_sigterm() -> None:
    """Chaos Toolkit turns SIGTERM into an error of the running activity
    and goes on with the method; a service manager stopping the runner
    means "stop now". Refuse new faults and heal at once, in a thread:
    the signal may interrupt an apply of this very thread, which must
    land first so that the heal removes it too (FaultSession serializes
    the two)."""
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        if _state is not None and not _state.interrupted:
            _state.interrupted = True
            logger.warning("chaosk3s: SIGTERM, healing before anything "
                           "else")
            _close_and_heal()
        if callable(previous):
            previous(signum, frame)

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: nothing to hook
        pass


def _close_and_heal() -> None:
    """Refuse new faults and heal, in a thread of its own (once): the
    caller may be a signal handler in the thread of an apply in flight,
    which must land first (FaultSession serializes the two)."""
    with _heal_lock:
        if _state.run is None or _state.healer is not None or \
                _state.cleaning:
            return
        _state.run.session.close()
        _state.healer = threading.Thread(target=_heal_now,
                                         name="chaosk3s-heal")
        _state.healer.start()


def _on_abort(info: dict) -> None:
    """The cluster's abort switch, seen by the watch's thread: stop
    injecting, heal, and end the activity running now through Chaos
    Toolkit's own graceful exit (chaoslib.exit: SIGUSR1 becomes
    SystemExit in the main thread, the run ends "interrupted" and
    before_activity_control refuses what would come next, rollbacks
    included)."""
    if _state is None or _state.run is None:
        return
    _close_and_heal()
    if not _state.ending and callable(signal.getsignal(signal.SIGUSR1)):
        exit_gracefully()


def _ledger_changed() -> None:
    """Every ledger write: the journal-so-far, and the faults' Events."""
    _write_partial()
    if _state.link is not None:
        try:
            _state.link.faults_changed(_state.run.ledger.entries())
        except ChaosK3sError as exc:  # an unreadable ledger: said there
            logger.warning("chaosk3s: no events for this change: %s", exc)


def _heal_now() -> None:
    try:
        if _state.run is not None:
            heal_run(_state.run)
    except InterruptExecution:  # a SIGTERM mid-walk: the walk went on to
        # its end first (FaultSession.heal); the cleanup goes on too
        logger.warning("chaosk3s: SIGTERM during the heal; it went on to "
                       "its end")
    except Exception as exc:  # noqa: BLE001 - reported; nodes expire too
        logger.error("chaosk3s could not heal everything: %s; run "
                     "`chaosk3s cleanup` (faults also expire on the nodes)",
                     exc)


def after_hypothesis_control(context: dict, state: dict = None,
                             **_kwargs) -> None:
    if _state is None or _state.run is None:
        return  # refused before the run began: nothing to record
    states = _state.partial.get("steady_states", {})
    key = "before" if states.get("before") is None else "after"
    states[key] = state
    if key == "after":
        # "recovered" means by itself: judged here, before rollbacks,
        # which wait for this read at most BOUNDED_SECONDS.
        _state.final = _final_view()
    _write_partial()


def _final_view() -> journal_section.FinalView:
    """The nodes now: a bounded fresh read, else the watch's view."""
    watch = _state.watch
    return journal_section.final_view(
        get_target(_state.configuration).kube,
        watch.nodes if watch is not None else list)


def after_activity_control(context: dict, state: dict = None,
                           **_kwargs) -> None:
    if _state is None or _state.run is None:
        return  # refused before the run began: nothing to record
    if state is not None and context in _rollbacks():
        _state.partial["rollbacks"].append(state)
    elif state is not None:
        _state.partial["run"].append(state)
    _write_partial()


def after_experiment_control(context: dict, state: dict = None,
                             **_kwargs) -> None:
    """Adds the `chaosk3s` section to the final journal, fails a
    completed run whose chaosk3s method or rollback activity raised, and
    redacts the journal (Chaos Toolkit writes this very dict). The
    cleanup heal comes next: at most one bounded read happens here (the
    nodes, when the steady state after the method was not checked); the
    Events and logs are read after the heal."""
    if state is None or _state is None:
        return
    _state.ending = True
    if _state.problem:
        state["chaosk3s"] = _refused_section()
    elif _state.run is not None:
        failed = outcome.failed_activities(state)
        if outcome.fail_if_activities_failed(state, failed):
            logger.error("chaosk3s: the run failed: %s", "; ".join(
                f"{f['phase']} activity {f['name']!r} raised {f['error']}"
                for f in failed))
        _state.journal = state  # cleanup amends it with the heal's outcome
        if _state.final is None:  # never checked: the nodes at the end
            _state.final = _final_view()
        state["chaosk3s"] = {**_section(), "failed_activities": failed,
                             **NOT_READ_YET}
    state.update(redact_journal(state, _state.redactor))


def cleanup_control(**_kwargs) -> None:
    """Heal whatever this run injected; stop what the control started.
    The journal chaos writes next gets the faults as healed (or not)."""
    if _state is None:
        return
    _state.ending = True
    try:
        if _state.link is not None:
            _state.link.stop_watching()
        if _state.run is not None:
            _state.run.session.close()
            with _sigint_ignored():
                _join_healer()
                _heal_now()
                _amend_journal()
            _add_evidence()
    finally:
        _owner_only(_state.journal_path)
        _close_link()
        if _state.watch:
            _state.watch.stop()
        forget_targets()
        if _state.started_lab:
            from chaosk3s.lab_control import stop_lab
            stop_lab(_state.started_lab)
        end_run()


def _join_healer() -> None:
    """From here the cleanup heals: no healer thread starts any more (a
    late SIGTERM or abort only finds the session closed), and one that
    runs is waited for, so the journal is amended after every heal."""
    with _heal_lock:
        _state.cleaning = True
        healer = _state.healer
    if healer is not None:
        healer.join()


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """A second Ctrl-C must not stop the cleanup heal halfway: SIGINT is
    ignored until it is done (SIGTERM and SIGKILL still end the process;
    the nodes' own timers remain)."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: no signal lands here
        previous = None
    else:
        logger.info("chaosk3s: healing; Ctrl-C is ignored until it is done")
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _close_link() -> None:
    """The run's verdict as Events, and every Event posted (bounded)."""
    if _state.link is None:
        return
    try:
        journal = _state.journal or {**_state.partial,
                                     "status": "interrupted"}
        title = str((_state.partial.get("experiment") or {}).get(
            "title", ""))
        _state.link.close(title, journal)
    except Exception:  # noqa: BLE001 - a record, never the run's end
        logger.exception("chaosk3s: cannot post the run's events")


def _amend_journal() -> None:
    """The final journal and the journal-so-far show every fault as the
    heal left it, and exactly what stays open, on which node and why."""
    try:
        entries = _state.run.ledger.entries()
    except ChaosK3sError as exc:
        logger.error("chaosk3s: %s", exc)
        return
    still = [o for e in entries for o in open_nodes(e)]
    for item in still:
        logger.error("chaosk3s: fault %s (%s) still open on %s: %s; run "
                     "`chaosk3s cleanup`", item["fault_id"], item["kind"],
                     item["node"], item["error"])
    if _state.journal is not None and "chaosk3s" in _state.journal:
        section = {**_state.journal["chaosk3s"], "open_faults": still,
                   "faults": journal_faults(entries)}
        _state.journal["chaosk3s"] = redact_journal(
            {"chaosk3s": section}, _state.redactor)["chaosk3s"]
    _write_partial()


# -- journal ---------------------------------------------------------------
# The evidence read after the cleanup heal, until it is.
NOT_READ_YET = {"node_events": None, "node_events_error": "not read: the "
                "run ended before its cleanup read them",
                "node_logs": None, "node_logs_error": "not read: the run "
                "ended before its cleanup read them"}


def _section(final: journal_section.FinalView | None = None) -> dict:
    """final: the nodes `recovered` is judged on; by default those of
    the steady state after the method (or of the run's end)."""
    entries = _state.run.ledger.entries()
    return {**journal_section.build(
        target=target_name(_state.configuration),
        nodes=_state.nodes_at_start,
        timeline=list(_state.watch.timeline) if _state.watch else [],
        faults=journal_faults(entries),
        kube=get_target(_state.configuration).kube,
        final=final or _state.final),
        "open_faults": [o for e in entries for o in open_nodes(e)],
        **_run_facts(), "failed_activities": [], "refused": None,
        "run_id": _state.run.run_id, "aborted": _aborted()}


def _add_evidence() -> None:
    """The API's node Events and the nodes' logs, into the final journal:
    read after the cleanup heal (they are a record, the heal is the
    cluster's), while the lab the run started is still up."""
    if _state.journal is None or "chaosk3s" not in _state.journal:
        return
    section = _state.journal["chaosk3s"]
    events, events_error = logs, logs_error = None, "not read: Ctrl-C"
    try:  # a Ctrl-C here skips the evidence, not the journal
        events, events_error = _node_events()
        logs, logs_error = _node_logs(section)
    except KeyboardInterrupt:
        logger.warning("chaosk3s: Ctrl-C: the nodes' events or logs are "
                       "not read")
    _state.journal["chaosk3s"] = redact_journal({"chaosk3s": {
        **section, "node_events": events, "node_events_error": events_error,
        "node_logs": logs, "node_logs_error": logs_error}},
        _state.redactor)["chaosk3s"]


def _node_events() -> tuple[list[dict] | None, str | None]:
    """The API's NodeNotReady/NodeReady Events since the run began (one
    bounded read), or None and why not."""
    began = datetime.fromisoformat(_state.partial["start"]).replace(
        microsecond=0)  # Events carry whole seconds
    try:
        return read_node_events(get_target(_state.configuration).kube,
                                began, datetime.now(UTC)), None
    except ChaosK3sError as exc:
        logger.warning("chaosk3s: cannot read the nodes' events: %s", exc)
        return None, f"not read: {exc}"


def _node_logs(section: dict) -> tuple[dict | None, str | None]:
    """Each node's log around its transitions (chaosk3s.node_logs), read
    while the lab (if the run started one) is still up; None and why
    if they could not be read at all."""
    try:
        target = get_target(_state.configuration)
        return read_node_logs(
            section, _state.nodes_at_start, target.transport,
            lambda node: target.inventory.command(node.role, "logs",
                                                  node.name),
            _state.redactor.text), None
    except Exception as exc:  # noqa: BLE001 - evidence, never the run's end
        logger.warning("chaosk3s: cannot read the nodes' logs: %s", exc)
        return None, f"not read: {type(exc).__name__}: {exc}"


def _run_facts() -> dict:
    return {"variables": outcome.variables(_state.configuration),
            "lab": _state.lab}


def _refused_section() -> dict:
    """Nothing ran: the reason, and what was asked."""
    return {"target": target_name(_state.configuration), **_run_facts(),
            "refused": _state.problem, "failed_activities": [],
            "nodes": {}, "timeline": [], "faults": [], "open_faults": [],
            "run_id": None, "aborted": None}


def _rollbacks() -> list:
    return (_state.partial.get("experiment") or {}).get("rollbacks", [])


def _journal_path() -> Path:
    """Where `chaos run` will write its journal (its --journal-path), so
    the partial journal is found where the final one would have been."""
    args = sys.argv
    for index, arg in enumerate(args):
        if arg == "--journal-path" and index + 1 < len(args):
            return Path(args[index + 1])
        if arg.startswith("--journal-path="):
            return Path(arg.split("=", 1)[1])
    return Path("journal.json")


def _owner_only(path: Path) -> None:
    """Chaos Toolkit writes the journal next, with open(path, "w"), which
    keeps an existing file's mode: it is made (or kept) 0600 first."""
    try:
        owner_only(path)
    except OSError as exc:
        logger.debug("chaosk3s: cannot protect the journal: %s", exc)


def _write_partial() -> None:
    """The journal so far, with the nodes as the readiness watch last saw
    them: never an API read here. Between activities one would hold the
    fault just applied for as long as its tries take when the API hangs
    under that very fault (a 15 s cut was held over 60 s)."""
    if _state.run is None:
        return
    # No status and no end: readers take it for an unfinished run.
    final = _state.final or journal_section.FinalView(
        _state.watch.nodes() if _state.watch else [], datetime.now(UTC),
        journal_section.WATCH)
    try:
        journal = redact_journal({**_state.partial, "chaosk3s": _section(
            final)}, _state.redactor)
        write_atomically(_state.journal_path,
                         json.dumps(journal, indent=2, default=str))
    except INTERRUPTIONS:
        raise  # a signal's (SIGTERM) ends the activity (errors.py)
    except Exception as exc:  # noqa: BLE001 - best effort: a ledger set
        # aside, or the run's lists changing under a heal's thread
        logger.warning("chaosk3s: cannot write the partial journal: %s",
                       exc)
