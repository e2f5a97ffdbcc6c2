"""The control's cleanup against a SIGTERM or an abort that comes while
it heals (review B7): the journal is amended after every heal, never
while a healer thread still walks."""

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
