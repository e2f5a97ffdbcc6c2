"""The chaosk3s control: safety and evidence around a Chaos Toolkit run.

- Starts the lab when the target is `lab` and none is up (and takes it
  down afterwards if it started it).
- Refuses a target not on its allowed list before the hypothesis runs.
- Watches node readiness for the whole run and writes it, with every
  fault, into journal.json under the `chaosk3s` key.
- Writes the journal-so-far when the experiment starts, after each
  activity and whenever a fault is recorded, so a killed run still leaves
  a partial journal.
- Heals everything the run injected in `cleanup_control`, whatever the
  rollback strategy and however the run ended.

Add it to an experiment as
``{"name": "chaosk3s", "provider": {"type": "python",
"module": "chaosk3s.control"}}``.
"""

import json
import logging
import signal
import sys
from pathlib import Path

from chaoslib.exceptions import InterruptExecution

from chaosk3s import journal_section
from chaosk3s.errors import ChaosK3sError
from chaosk3s.files import write_atomically
from chaosk3s.readiness import ReadinessWatch, utc_now
from chaosk3s.run import begin_run, end_run
from chaosk3s.safe_cleanup import heal_run
from chaosk3s.target import forget_targets, get_target, target_name

logger = logging.getLogger("chaostoolkit")


class _State:
    """What the control keeps between hooks of one run."""

    def __init__(self):
        self.problem: str | None = None
        self.configuration: dict = {}
        self.started_lab = False
        self.watch: ReadinessWatch | None = None
        self.run = None
        self.partial: dict = {}
        self.journal_path = _journal_path()
        self.nodes_at_start: dict = {}
        self.interrupted = False
        self.final_nodes: list | None = None  # at the steady state after
        self.last_nodes: list = []  # as last read, for in-activity writes


_state: _State | None = None


def configure_control(configuration: dict = None, secrets: dict = None,
                      settings: dict = None, experiment: dict = None,
                      **_kwargs) -> None:
    """Never raises (Chaos Toolkit would silently drop the control);
    problems are raised as InterruptExecution before the experiment."""
    global _state
    _state = _State()
    _state.configuration = dict(configuration or {})
    _heal_on_sigterm()
    try:
        _prepare(_state.configuration, experiment or {})
    except ChaosK3sError as exc:
        _state.problem = str(exc)
    except Exception as exc:  # noqa: BLE001 - reported, not swallowed
        _state.problem = f"{type(exc).__name__}: {exc}"


def _prepare(configuration: dict, experiment: dict) -> None:
    from chaosk3s.lab_control import ensure_lab  # the lab is optional
    name = target_name(configuration)
    if name == "lab":
        _state.started_lab = ensure_lab(configuration)
    target = get_target(configuration)
    target.check_allowed(bool(configuration.get("force")))
    _state.run = begin_run(name)
    _state.run.ledger.on_change = lambda: _write_partial(read_nodes=False)
    topology = target.topology()
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
        raise InterruptExecution(f"chaosk3s refused to run: "
                                 f"{_state.problem}")
    _write_partial()


def before_activity_control(context: dict, **_kwargs) -> None:
    """After SIGTERM nothing more is injected: the run is aborted."""
    if _state is not None and _state.interrupted:
        raise InterruptExecution("chaosk3s: SIGTERM received; faults were "
                                 "healed, aborting the run")


def _heal_on_sigterm() -> None:
    """Chaos Toolkit turns SIGTERM into an error of the running activity
    and goes on with the method; a service manager stopping the runner
    means "stop now". Heal first, then let Chaos Toolkit handle it."""
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        if _state is not None and not _state.interrupted:
            _state.interrupted = True
            logger.warning("chaosk3s: SIGTERM, healing before anything "
                           "else")
            _heal_now()
        if callable(previous):
            previous(signum, frame)

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: nothing to hook
        pass


def _heal_now() -> None:
    try:
        if _state.run is not None:
            heal_run(_state.configuration, _state.run)
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
        # "recovered" means by itself: judged here, before rollbacks.
        _state.final_nodes = journal_section.read_nodes(
            get_target(_state.configuration).kube)
    _write_partial()


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
    """Adds the `chaosk3s` section to the final journal."""
    if state is None or _state.run is None:
        return
    state["chaosk3s"] = _section()


def cleanup_control(**_kwargs) -> None:
    """Heal whatever this run injected; stop what the control started."""
    if _state is None:
        return
    try:
        _heal_now()
    finally:
        if _state.watch:
            _state.watch.stop()
        forget_targets()
        if _state.started_lab:
            from chaosk3s.lab_control import stop_lab
            stop_lab()
        end_run()


# -- journal ---------------------------------------------------------------
def _section(final: list | None = None) -> dict:
    return journal_section.build(
        target=target_name(_state.configuration),
        nodes=_state.nodes_at_start,
        timeline=list(_state.watch.timeline) if _state.watch else [],
        faults=_state.run.ledger.entries(),
        kube=get_target(_state.configuration).kube,
        final=_state.final_nodes if final is None else final)


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


def _write_partial(read_nodes: bool = True) -> None:
    """read_nodes=False while a fault is being applied: an API read
    there would delay the fault (or hang on the very outage it causes),
    so the nodes as last read stand in."""
    if _state.run is None:
        return
    if read_nodes and _state.final_nodes is None:
        _state.last_nodes = journal_section.read_nodes(
            get_target(_state.configuration).kube)
    # No status and no end: readers take it for an unfinished run.
    final = _state.final_nodes
    journal = {**_state.partial, "chaosk3s": _section(
        final=_state.last_nodes if final is None else final)}
    try:
        write_atomically(_state.journal_path,
                         json.dumps(journal, indent=2, default=str))
    except OSError as exc:
        logger.debug("chaosk3s: cannot write the partial journal: %s", exc)
