"""Node-side starts: a stopped K3s comes back by itself at a deadline.

The same mechanism as a partition's expiry (``shell.timer``: a transient
systemd timer, or a detached ``sleep`` in its own session where systemd
does not run the node), armed on the node when K3s is stopped, so it
starts again even if the runner dies or loses the node. The run cancels
it when it starts K3s itself. Timers live in the node's state dir as
``CHAOSK3S_START-<fault>.timer``, which the read-back lists beside the
partitions' chains.
"""

import re
import shlex
from datetime import UTC, datetime

from chaosk3s.faults import shell
from chaosk3s.faults.partition import (
    START_PREFIX,
    NodeSetup,
    check_run_id,
    short_id,
)


def start_timer_name(fault_id: str) -> str:
    return START_PREFIX + short_id(fault_id)


STARTED = "chaosk3s-started"  # the job's last log line: exit code, epoch


def arm_start_script(setup: NodeSetup, fault_id: str, seconds: float,
                     start_command: str) -> str:
    """Arm: run start_command on the node after seconds (its output in
    ``$STATE/<name>.log``, then ``chaosk3s-started CODE EPOCH`` when it
    returned: a unit's start returns once it is active). Re-arming the
    same fault replaces its timer. Prints ``armed NAME in TTLs until
    EPOCH``, the node's deadline (parsed by armed_until)."""
    check_run_id(fault_id)
    name = start_timer_name(fault_id)
    ttl = f"{float(seconds):.3f}".rstrip("0").rstrip(".")
    job = (f'{{ {start_command}\n}} >"$STATE/{name}.log" 2>&1\n'
           f'echo "{STARTED} $? $(date +%s)" >>"$STATE/{name}.log"')
    return "\n".join([
        shell.prelude(setup.node_state, tools=()), shell.HEAL_FUNCTIONS,
        f"chaosk3s_cancel {shlex.quote(name)}",
        shell.timer(name, ttl, setup.timer, job,
                    "chaosk3s-start-" + short_id(fault_id), fault_id),
        f"echo armed {name} in {ttl}s until $expires", ""])


def armed_until(output: str) -> str | None:
    """The node's deadline an arm printed, as an ISO time (None if it
    printed none)."""
    found = re.search(r"armed \S+ in \S+s until (\d+)", output)
    return _iso(int(found.group(1))) if found else None


def started_script(setup: NodeSetup, fault_id: str) -> str:
    """Print when the node-side start of fault_id returned, if it ran."""
    name = start_timer_name(fault_id)
    return "\n".join([
        shell.prelude(setup.node_state, tools=()),
        f'grep -- {STARTED} "$STATE/{name}.log" 2>/dev/null | tail -n 1',
        "exit 0", ""])


def start_returned_at(output: str) -> str | None:
    """When the node-side start returned having started the unit (exit
    0), as an ISO time; None if it did not run or failed."""
    found = re.search(STARTED + r" 0 (\d+)", output)
    return _iso(int(found.group(1))) if found else None


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def cancel_start_script(setup: NodeSetup, fault_id: str | None) -> str:
    """Cancel one fault's start timer (None: every start timer)."""
    pattern = (start_timer_name(fault_id) if fault_id
               else START_PREFIX + "[A-Za-z0-9_-]+")
    return "\n".join([
        shell.prelude(setup.node_state, tools=()), shell.HEAL_FUNCTIONS,
        f"chaosk3s_cancel {shlex.quote(pattern)}", "echo cancelled", ""])
