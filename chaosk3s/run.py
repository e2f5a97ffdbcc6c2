"""The run that activities belong to: its id, target and ledger.

The chaosk3s control begins a run when the experiment starts; activities
used without the control get an implicit run of their own, so their
faults are still recorded and healable.
"""

from dataclasses import dataclass

from chaosk3s.ledger import Ledger, new_run_id
from chaosk3s.target import target_name


@dataclass
class Run:
    ledger: Ledger

    @property
    def run_id(self) -> str:
        return self.ledger.run_id


_current: Run | None = None


def begin_run(target: str) -> Run:
    global _current
    _current = Run(Ledger(new_run_id(), target))
    return _current


def current_run(configuration: dict | None) -> Run:
    """The control's run, or an implicit one for this target."""
    name = target_name(configuration)
    if _current is None or _current.ledger.target != name:
        return begin_run(name)
    return _current


def end_run() -> None:
    global _current
    _current = None
