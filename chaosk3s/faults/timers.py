"""Node-side starts: a stopped K3s comes back by itself at a deadline.

The same mechanism as a partition's expiry (``shell.timer``: a transient
systemd timer, or a detached ``sleep`` in its own session where systemd
does not run the node), armed on the node when K3s is stopped, so it
starts again even if the runner dies or loses the node. The run cancels
it when it starts K3s itself. Timers live in the node's state dir as
``CHAOSK3S_START-<fault>.timer``, which the read-back lists beside the
partitions' chains.
"""

import shlex

from chaosk3s.faults import shell
from chaosk3s.faults.partition import (
    START_PREFIX,
    NodeSetup,
    check_run_id,
    short_id,
)


def start_timer_name(fault_id: str) -> str:
    return START_PREFIX + short_id(fault_id)


def arm_start_script(setup: NodeSetup, fault_id: str, seconds: float,
                     start_command: str) -> str:
    """Arm: run start_command on the node after seconds (its output in
    ``$STATE/<name>.log``). Re-arming the same fault replaces its timer."""
    check_run_id(fault_id)
    name = start_timer_name(fault_id)
    ttl = f"{float(seconds):.3f}".rstrip("0").rstrip(".")
    job = f'{{ {start_command}\n}} >"$STATE/{name}.log" 2>&1'
    return "\n".join([
        shell.prelude(setup.node_state, tools=()), shell.HEAL_FUNCTIONS,
        f"chaosk3s_cancel {shlex.quote(name)}",
        shell.timer(name, ttl, setup.timer, job,
                    "chaosk3s-start-" + short_id(fault_id), fault_id),
        f"echo armed {name} in {ttl}s", ""])


def cancel_start_script(setup: NodeSetup, fault_id: str | None) -> str:
    """Cancel one fault's start timer (None: every start timer)."""
    pattern = (start_timer_name(fault_id) if fault_id
               else START_PREFIX + "[A-Za-z0-9_-]+")
    return "\n".join([
        shell.prelude(setup.node_state, tools=()), shell.HEAL_FUNCTIONS,
        f"chaosk3s_cancel {shlex.quote(pattern)}", "echo cancelled", ""])
