"""Node actions that prove their effect: restart, stop, start, reboot.

Each runs the inventory's command on one node, then reads evidence back
from the node itself until what was asked for shows, within a bound, and
raises EffectNotSeen (node, command, what was expected, what was seen)
otherwise. An issued command is not an effect: a wrong inventory command,
a sudo prompt or a read-only systemd must not pass for a restart.

Evidence, in the forms a systemd node prints it (the lab's node CLI
prints the same):
- the unit's state, from the inventory's ``status`` command
  (``systemctl show -p MainPID,ActiveState,ActiveEnterTimestampMonotonic``);
- the boot id, from ``boot_id`` (``/proc/sys/kernel/random/boot_id``);
- on servers, ``serving`` exits 0 (K3s answers ``/ping``).

Pure of targets and inventories: a transport and the node's commands in,
a dict of evidence for the journal out.
"""

import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from chaosk3s.errors import ChaosK3sError, EffectNotSeen
from chaosk3s.faults.partition import DEFAULT_STATE_DIR
from chaosk3s.readiness import utc_now
from chaosk3s.transports.base import Transport

POLL = 0.5  # seconds between two reads of the evidence
READ_TIMEOUT = 10.0  # one read; a node going down may not answer at all
STOPPED = ("inactive", "failed")


@dataclass(frozen=True)
class ServiceState:
    """The unit as `systemctl show` describes it."""

    main_pid: int
    active_state: str
    since: int  # ActiveEnterTimestampMonotonic, microseconds

    @property
    def running(self) -> bool:
        return self.active_state == "active" and self.main_pid > 0

    @property
    def stopped(self) -> bool:
        return self.active_state in STOPPED

    def started_after(self, before: "ServiceState") -> bool:
        """Running, as a process other than the one seen before."""
        return self.running and (self.main_pid != before.main_pid or
                                 self.since > before.since)

    def __str__(self) -> str:
        return (f"MainPID={self.main_pid} ActiveState={self.active_state} "
                f"ActiveEnterTimestampMonotonic={self.since}")

    def as_dict(self) -> dict:
        return asdict(self)


def parse_status(text: str) -> ServiceState:
    """`systemctl show` key=value lines; missing numbers count as 0."""
    fields = dict(line.split("=", 1) for line in text.splitlines()
                  if "=" in line)

    def number(key: str) -> int:
        value = fields.get(key, "").strip()
        return int(value) if value.isdigit() else 0

    return ServiceState(number("MainPID"),
                        fields.get("ActiveState", "").strip() or "unknown",
                        number("ActiveEnterTimestampMonotonic"))


def read_status(transport: Transport, command: str) -> ServiceState:
    out = transport.run(command, timeout=READ_TIMEOUT,
                        description=f"read service state ({command})")
    state = parse_status(out.stdout)
    if state.active_state == "unknown":
        raise ChaosK3sError(f"on node {transport.node}: `{command}` printed "
                            f"no ActiveState: {out.stdout.strip()[:200]!r}")
    return state


def read_boot_id(transport: Transport, command: str) -> str:
    out = transport.run(command, timeout=READ_TIMEOUT,
                        description=f"read boot id ({command})")
    boot = out.stdout.strip()
    if not boot:
        raise ChaosK3sError(f"on node {transport.node}: `{command}` printed "
                            f"no boot id")
    return boot


def member_health(transport: Transport, command: str) -> tuple[bool, str]:
    """Whether the node's etcd member says it is healthy (its /health
    answers {"health":"true"}), and what it said."""
    result = transport.run(command, timeout=READ_TIMEOUT, check=False,
                           description="etcd member health")
    said = (result.stdout.strip() or result.stderr.strip())[:200]
    return (result.ok and '"health":"true"' in result.stdout.replace(
        " ", ""), said or f"exit {result.code}")


def wait_until(read: Callable[[], object], done: Callable[[object], bool],
               bound: float) -> tuple[bool, object]:
    """Read until done(value) or bound seconds pass; a read that fails
    (the node is down, restarting) is seen as its error and retried."""
    deadline = time.monotonic() + bound
    while True:
        try:
            seen = read()
        except ChaosK3sError as exc:
            seen = exc
        if not isinstance(seen, Exception) and done(seen):
            return True, seen
        if time.monotonic() >= deadline:
            return False, seen
        time.sleep(POLL)


Issued = Callable[[], None] | None  # told just before a command is sent


def _issue(transport: Transport, action: str, command: str, bound: float,
           expected: str, seen_now: Callable[[], object],
           on_issue: Issued = None) -> None:
    """Run the action's command; its failure is the action's failure.
    on_issue is told first: from then on the node may have changed."""
    if on_issue is not None:
        on_issue()
    try:
        transport.run(command, timeout=max(bound, 1.0),
                      description=f"{action} ({command})")
    except ChaosK3sError as exc:
        try:
            now = seen_now()
        except ChaosK3sError as read_error:
            now = read_error
        raise EffectNotSeen(transport.node, action, command, expected,
                            f"the command failed ({exc}); then {now}"
                            ) from None


def restart(transport: Transport, commands: dict[str, str],
            bound: float, on_issue: Issued = None) -> dict:
    """Restart the unit; seen when it runs as a new process (a new
    MainPID or a later ActiveEnterTimestampMonotonic)."""
    before = read_status(transport, commands["status"])
    return _service_action(
        transport, "restart", commands, bound, before,
        "the service started again (new MainPID or start time)",
        lambda state: state.started_after(before), on_issue)


def upgrade(transport: Transport, commands: dict[str, str],
            bound: float, on_issue: Issued = None) -> dict:
    """Run the upgrade command (its {version} already filled in); seen,
    like a restart, when the unit runs as a new process. That it runs
    the new release is for the caller to read (the API's kubeletVersion:
    chaosk3s.upgrade)."""
    before = read_status(transport, commands["status"])
    return _service_action(
        transport, "upgrade", commands, bound, before,
        "the service started again (new MainPID or start time)",
        lambda state: state.started_after(before), on_issue)


def stop(transport: Transport, commands: dict[str, str],
         bound: float, on_issue: Issued = None) -> dict:
    """Stop the unit; seen when its ActiveState is inactive or failed."""
    before = read_status(transport, commands["status"])
    return _service_action(transport, "stop", commands, bound,
                           before, "the service inactive",
                           lambda state: state.stopped, on_issue)


def start(transport: Transport, commands: dict[str, str], bound: float,
          server: bool) -> dict:
    """Start the unit; seen when it is active and, on a server, serving
    (the inventory's `serving` command exits 0)."""
    before = read_status(transport, commands["status"])
    result = _service_action(transport, "start", commands, bound,
                             before, "the service active",
                             lambda state: state.running)
    if server and commands.get("serving"):
        result["serving"] = _serving(transport, commands, bound, result)
    return result


def _serving(transport: Transport, commands: dict[str, str], bound: float,
             result: dict) -> str:
    command = commands["serving"]
    done, seen = wait_until(lambda: transport.run(
        command, timeout=READ_TIMEOUT, description="is k3s serving"
    ).stdout.strip(), lambda out: True, bound)
    if not done:
        raise EffectNotSeen(transport.node, "start", commands["start"],
                            f"the server serving (`{command}` succeeds)",
                            f"{seen} after {bound:g}s", result)
    return str(seen)[:200]


def _service_action(transport: Transport, action: str,
                    commands: dict[str, str], bound: float,
                    before: ServiceState, expected: str,
                    done: Callable[[ServiceState], bool],
                    on_issue: Issued = None) -> dict:
    command, status = commands[action], commands["status"]
    issued_at, started = utc_now(), time.monotonic()
    _issue(transport, action, command, bound, expected,
           lambda: read_status(transport, status), on_issue)
    ok, seen = wait_until(lambda: read_status(transport, status),
                          lambda s: done(s), bound)
    evidence = {"node": transport.node, "action": action,
                "command": command, "before": before.as_dict(),
                "issued_at": issued_at}
    if not ok:
        raise EffectNotSeen(transport.node, action, command, expected,
                            f"{seen} after {bound:g}s (before: {before})",
                            evidence)
    return {**evidence, "after": seen.as_dict(), "confirmed_at": utc_now(),
            "seconds": round(time.monotonic() - started, 3)}


def detached(command: str, log: str) -> str:
    """A script that runs command in its own session, detached from the
    caller (it survives the SSH session or the node going down), with
    its output and exit status in log. The command runs under its own
    sh, so environment assignments, quotes and `&&` mean what they say."""
    job = f"{command}\necho \"chaosk3s-exit $?\""
    return "\n".join([
        f"mkdir -p {shlex.quote(log.rsplit('/', 1)[0])} || exit 1",
        f"setsid nohup /bin/sh -c {shlex.quote(job)} "
        f"</dev/null >{shlex.quote(log)} 2>&1 &",
        "echo issued"])


def reboot(transport: Transport, commands: dict[str, str], bound: float,
           tag: str, state_dir: str = DEFAULT_STATE_DIR,
           on_issue: Issued = None) -> dict:
    """Reboot the machine; seen when its boot id changed. The command is
    detached (a reboot ends the session that issued it); if it exits
    non-zero first, that is the error."""
    node, command = transport.node, commands["reboot"]
    before = read_boot_id(transport, commands["boot_id"])
    log = f"{state_dir.rstrip('/')}/{node}/reboot-{tag}.log"
    issued_at, started = utc_now(), time.monotonic()
    _issue(transport, "reboot", detached(command, log), bound,
           "the command issued", lambda: f"boot id {before}", on_issue)
    down: list[float] = []  # how long each unanswered read took
    ok, seen = wait_until(
        lambda: _boot_or_exit(transport, commands["boot_id"], log, down),
        lambda value: value[0] != before or value[1] not in (None, 0),
        bound)
    evidence = {"node": node, "action": "reboot", "command": command,
                "boot_id_before": before, "issued_at": issued_at}
    if not ok or seen[0] == before:
        shown = seen if not ok and isinstance(seen, Exception) else (
            f"boot id still {before}" + (f", the command exited {seen[1]}:"
                                         f" {seen[2]}" if seen[1] else ""))
        raise EffectNotSeen(node, "reboot", command,
                            "a new boot id (the machine rebooted)",
                            f"{shown} after {time.monotonic() - started:.1f}"
                            f"s", evidence)
    transport.run(f"rm -f {shlex.quote(log)}", timeout=READ_TIMEOUT,
                  check=False)
    return {**evidence, "boot_id_after": seen[0], "back_at": utc_now(),
            "unanswered_reads": len(down),
            "seconds": round(time.monotonic() - started, 3)}


def _boot_or_exit(transport: Transport, boot_command: str, log: str,
                  down: list[float]) -> tuple[str, int | None, str]:
    """(boot id, the detached command's exit status or None, its log)."""
    script = (f"boot=$({boot_command}) || exit 3\n"
              f"printf '%s\\n' \"$boot\"\n"
              f"cat {shlex.quote(log)} 2>/dev/null\nexit 0")
    started = time.monotonic()
    try:
        out = transport.run(script, timeout=READ_TIMEOUT,
                            description="read boot id").stdout
    except ChaosK3sError:
        down.append(time.monotonic() - started)
        raise
    first, _, rest = out.partition("\n")
    code = None
    for line in rest.splitlines():
        if line.startswith("chaosk3s-exit "):
            code = int(line.split()[1])
    return first.strip(), code, rest.strip()[-300:]
