"""The fault lifecycle under signals and odd failures (review B1, B2,
B4): a stop interrupted mid-command, a Ctrl-C during the heal walk, a
fault whose command never left the runner. Root-free: the session's
ports onto fake nodes (tests/unit/fakecluster.py), a real ledger file,
real signals delivered to this (the main) thread."""

import signal
import threading
import time
from types import SimpleNamespace

import pytest
from chaoslib.exceptions import InterruptExecution

from chaosk3s.errors import ChaosK3sError
from chaosk3s.faults.session import NOT_APPLIED
from tests.unit.fakecluster import COMMANDS
from tests.unit.test_fault_session import (  # noqa: F401 - fixtures
    Ports,
    cluster,
    ledger_dir,
    node,
    partition,
    session,
)


class Interrupted(Exception):  # noqa: N818 - what a signal handler raises
    """As Chaos Toolkit's SIGTERM handler raises InterruptExecution."""


@pytest.fixture
def on_signal():
    """send(exc=Interrupted): a SIGUSR2 to the main thread, whose handler
    raises exc there (the handler is restored after)."""
    raised: list = [Interrupted]

    def raise_it(signum, frame):
        raise raised[0]("signal")

    def send(exc: type = Interrupted) -> None:
        raised[0] = exc
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR2)
    previous = signal.signal(signal.SIGUSR2, raise_it)
    yield send
    signal.signal(signal.SIGUSR2, previous)


def remote_lands_later(fakes, kind: str, release: threading.Event):
    """The node runs kind's command whatever the local client does (ssh
    killed on the runner: the remote systemctl goes on) once released;
    the client sees it return only then."""
    landed = threading.Event()

    def remote(name):
        def run():
            release.wait(30)
            getattr(fakes, f"_{kind}")(fakes.nodes[name], "")
            landed.set()
        threading.Thread(target=run, daemon=True).start()
        return name
    fakes.hooks[kind] = remote
    fakes.gate[kind] = landed


def test_a_stop_interrupted_mid_command_is_healed_after_it_lands(
        session, cluster, on_signal):  # noqa: F811
    """Was: SIGTERM (or the abort's SIGUSR1) landed in the thread that
    ran `systemctl stop`; the apply left in-flight at once, the heal
    read K3s still running and closed the stop, then the remote stop
    landed and K3s stayed stopped for good."""
    release, healed = threading.Event(), []
    remote_lands_later(cluster, "stop", release)

    def sigterm():  # what the control's handler does, from a thread
        while "stop" not in cluster.seen_before:
            time.sleep(0.01)
        on_signal()
        healer = threading.Thread(target=lambda: healed.append(
            session.heal()))
        healer.start()
        time.sleep(0.5)  # the heal is waiting (or, before, done)
        release.set()
        healer.join(30)
    helper = threading.Thread(target=sigterm)
    helper.start()
    with pytest.raises(Interrupted):
        session.node_fault("stop", node("agent-0"), dict(COMMANDS), 5,
                           start_after=60)
    helper.join(30)
    assert healed and healed[0].ok, healed
    assert cluster.nodes["agent-0"].active  # started after the stop
    assert cluster.nodes["agent-0"].timers == {}
    (entry,) = session.ledger.entries()
    assert entry["ended_at"] and entry["healed_by"] == "cleanup"


@pytest.mark.parametrize("interruption", [KeyboardInterrupt,
                                          InterruptExecution])
def test_a_ctrl_c_during_the_heal_finishes_the_walk_then_comes_out(
        session, cluster, on_signal, interruption):  # noqa: F811
    """Was: attempt and heal caught only Exception, so a second Ctrl-C
    during the cleanup heal stopped the whole walk: the stop on
    server-cp-0, healed after the partitions, stayed. And a SIGTERM
    (Chaos Toolkit raises InterruptExecution, an Exception) during the
    maintenance form's own uncordon was noted as one node's error and
    lost: the activity went on to the next node."""
    first = partition(session, "agent-0")
    session.node_fault("stop", node("server-cp-0"), dict(COMMANDS), 5,
                       start_after=60)
    sent = []

    def ctrl_c_once(name):
        if not sent:
            sent.append(name)
            on_signal(interruption)
    cluster.hooks["heal"] = ctrl_c_once
    with pytest.raises(interruption):
        session.heal()
    assert cluster.nodes["server-cp-0"].active  # the walk went on
    assert cluster.nodes["agent-0"].chains == {}  # retried after it
    assert [e["ended_at"] is not None for e in session.ledger.entries()
            ] == [True, True]
    assert session.heal().ok and first


def test_a_sigterm_while_the_ledger_is_mirrored_ends_the_apply_unsent(
        session, cluster, on_signal):  # noqa: F811
    """Was (test_maintenance_lab's SIGTERM test, flaky beside another
    lab): the SIGTERM's InterruptExecution landed in the ledger's
    on_change (the control's journal so far and Events, best effort for
    errors) and was logged there as a warning: the restart recorded just
    before was sent anyway, the maintenance went on to uncordon the node
    itself, and only the closed session's refusal of the next node ended
    the activity (the cordon healed by "uncordon", not the cleanup)."""
    def mirror():  # the first write: the restart's record
        if not session.ledger.on_change.sent:
            session.ledger.on_change.sent = True
            on_signal(InterruptExecution)
            time.sleep(1)  # the handler raises here, in the mirror
    mirror.sent = False
    session.ledger.on_change = mirror
    with pytest.raises(InterruptExecution):
        session.node_fault("restart", node("agent-0"), dict(COMMANDS), 5)
    assert mirror.sent and cluster.sent("restart") == []
    (entry,) = session.ledger.entries()
    assert entry["kind"] == "restart" and not entry["ended_at"]
    report = session.heal()  # the control's: reads K3s running, closes
    assert report.ok and report.healed == [entry["id"]]
    assert session.ledger.entries()[0]["healed_by"] == "cleanup"


def test_the_controls_mirrors_let_a_sigterm_through(monkeypatch, caplog):
    """The ledger's on_change is the control's journal so far and the
    faults' Events: an error there is logged, a SIGTERM ends the
    activity."""
    from chaosk3s import control
    from chaosk3s.cluster_link import ClusterLink
    state = control._State()
    state.run = SimpleNamespace(run_id="r")
    monkeypatch.setattr(control, "_state", state)
    link = ClusterLink.__new__(ClusterLink)
    for error in (OSError("disk full"), InterruptExecution("SIGTERM")):
        def fail(*_args, error=error):
            raise error
        monkeypatch.setattr(control, "_section", fail)
        link.events = SimpleNamespace(faults_changed=fail)
        if isinstance(error, InterruptExecution):
            with pytest.raises(InterruptExecution):
                control._write_partial()
            with pytest.raises(InterruptExecution):
                link.faults_changed([])
        else:
            control._write_partial()
            link.faults_changed([])
    assert "cannot write the partial journal: disk full" in caplog.text
    assert "cannot queue the faults' events" in caplog.text


def test_the_controls_cleanup_heal_ignores_ctrl_c():
    from chaosk3s import control
    before = signal.getsignal(signal.SIGINT)
    with control._sigint_ignored():
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        time.sleep(0.05)  # a KeyboardInterrupt would land here
    assert signal.getsignal(signal.SIGINT) is before


def test_a_restart_that_never_reached_its_node_is_not_left_open(
        session, cluster):  # noqa: F811
    """Was: restart_k3s on an unreachable node raised NodeUnreachable
    before `restart` was sent, and the entry stayed open (journal
    open_faults listed it, `chaosk3s cleanup` exited 1)."""
    cluster.nodes["agent-0"].reachable = False
    for action in ("restart", "stop", "reboot"):
        with pytest.raises(ChaosK3sError, match="No route to host"):
            session.node_fault(action, node("agent-0"), dict(COMMANDS), 1,
                               start_after=60)
    assert session.ledger.open_faults() == []
    assert {e["healed_by"] for e in session.ledger.entries()} == {
        NOT_APPLIED}
    assert cluster.sent("restart") == cluster.sent("arm") == []


def test_any_error_mid_fault_settles_what_reads_back_gone(
        session, cluster):  # noqa: F811
    """Was: an error that is not a ChaosK3sError inside node_fault
    skipped the settling: a stop that never stopped stayed open, its
    node-side start armed."""
    def broken(name):
        raise RuntimeError("the transport broke")
    cluster.hooks["stop"] = broken
    with pytest.raises(RuntimeError):
        session.node_fault("stop", node("agent-0"), dict(COMMANDS), 1,
                           start_after=60)
    (entry,) = session.ledger.entries()
    assert entry["ended_at"] and entry["healed_by"] == "stop failed"
    assert cluster.nodes["agent-0"].active
    assert cluster.nodes["agent-0"].timers == {}  # cancelled
