"""The control's cleanup against a SIGTERM or an abort that comes while
it heals (review B7): the journal is amended after every heal, never
while a healer thread still walks."""

import subprocess
import sys
import threading
import time
from types import SimpleNamespace

from chaosk3s import control
from chaosk3s.faults.undo import HealReport


class Session:
    """Records heals; the first one sees a SIGTERM arrive meanwhile."""

    def __init__(self, events: list):
        self.events = events

    def close(self) -> None:
        pass

    def heal(self, by: str = "cleanup", **_kwargs) -> HealReport:
        name = threading.current_thread().name
        first = not self.events
        self.events.append(("heal", name))
        if first:
            control._close_and_heal()  # what SIGTERM's handler does
        else:
            time.sleep(0.5)  # a walk takes a while
        self.events.append(("healed", name))
        return HealReport()


def test_a_sigterm_during_the_cleanup_heal_heals_before_the_amend(
        monkeypatch):
    """Was: cleanup joined a SIGTERM healer only if one existed when it
    began; one started during its heal ran on while the journal was
    amended (and after it)."""
    events: list = []
    state = control._State()
    state.run = SimpleNamespace(session=Session(events), run_id="r")
    monkeypatch.setattr(control, "_state", state)
    monkeypatch.setattr(control, "_amend_journal",
                        lambda: events.append(("amend", "")))
    monkeypatch.setattr(control, "end_run", lambda: None)
    monkeypatch.setattr(control, "forget_targets", lambda: None)
    control.cleanup_control()
    if state.healer is not None:
        state.healer.join(5)
    assert events[-1] == ("amend", ""), events


HOLDS_THE_LOCK = """
import signal, sys, threading, time
from types import SimpleNamespace
from chaosk3s import control
from chaosk3s.faults.undo import HealReport

healed = threading.Event()
session = SimpleNamespace(close=lambda: None,
                          heal=lambda **_: healed.set() or HealReport())
control._state = control._State()
control._state.run = SimpleNamespace(session=session, run_id="r")
signal.signal(signal.SIGTERM, lambda *_: None)  # Chaos Toolkit's, here
control._heal_on_sigterm()
with control._heal_lock:  # as cleanup's _join_healer holds it
    signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
    time.sleep(0.2)  # the handler runs here, in this very thread
control._state.healer.join(5)
print("healed" if healed.is_set() else "not healed")
"""


def test_a_sigterm_while_the_main_thread_holds_the_heal_lock_heals():
    """Was: the heal lock was a plain Lock; a SIGTERM whose handler ran
    in the main thread while it held the lock (cleanup's _join_healer)
    waited for it forever: the run hung, healing nothing."""
    done = subprocess.run([sys.executable, "-c", HOLDS_THE_LOCK],
                          capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["healed"], done.stderr[-2000:]
