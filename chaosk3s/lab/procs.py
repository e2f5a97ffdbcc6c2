"""Lab services as detached processes that any later process can manage.

A service runs in its node's namespace, in a session of its own, so it
outlives the command that started it (``lab up`` may be killed with
SIGKILL). Its pid file records the pid *and* the kernel start time, so a
recycled pid is never mistaken for the service.
"""

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from chaosk3s.lab.shell import in_netns


@dataclass(frozen=True)
class Service:
    node: str
    name: str
    namespace: str
    argv: tuple[str, ...]
    log: Path
    pidfile: Path
    env: tuple[tuple[str, str], ...] = ()


def start(service: Service) -> int:
    """Start a service detached; return its pid. No-op if it runs."""
    running = pid_of(service)
    if running:
        return running
    service.log.parent.mkdir(parents=True, exist_ok=True)
    service.pidfile.parent.mkdir(parents=True, exist_ok=True)
    with open(service.log, "ab") as log:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        log.write(f"--- {stamp} starting {service.name}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            in_netns(service.namespace, list(service.argv)),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
            env={**os.environ, **dict(service.env)})
    service.pidfile.write_text(json.dumps(
        {"pid": proc.pid, "started": start_ticks(proc.pid)}))
    return proc.pid


def pid_of(service: Service) -> int | None:
    """The service's pid if that very process is alive, else None."""
    try:
        record = json.loads(service.pidfile.read_text())
    except (OSError, ValueError):
        return None
    pid = record.get("pid")
    if pid and alive(pid) and start_ticks(pid) == record.get("started"):
        return pid
    return None


def stop(services: list[Service], grace: float = 3.0) -> None:
    """SIGTERM every service at once, SIGKILL what is left after grace."""
    pids = [pid for pid in map(pid_of, services) if pid]
    signal_and_wait(pids, grace)
    for service in services:
        service.pidfile.unlink(missing_ok=True)


def signal_and_wait(pids: list[int], grace: float = 3.0) -> None:
    """Terminate process groups, then kill what outlives the grace.

    A service is its whole group: its leader (a restart loop) may be
    gone while the process it ran still shuts down, and a service that
    is "stopped" while it still runs would be started twice.
    """
    for pid in pids:
        _kill_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(map(_group_alive, pids)):
        time.sleep(0.02)
    for pid in filter(_group_alive, pids):
        _kill_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and any(map(_group_alive, pids)):
        time.sleep(0.02)


def _group_alive(pgid: int) -> bool:
    """True while any live (not zombie) process is in the group."""
    alive(pgid)  # reap the leader if it is our own child
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def alive(pid: int) -> bool:
    """True if pid runs; zombies of our own children are reaped first."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1]
    except OSError:
        return False
    return state.split()[0] not in ("Z", "X")


def start_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1]
    except OSError:
        return None
    return int(fields.split()[19])  # field 22 of stat: starttime


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
