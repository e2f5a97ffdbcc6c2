"""The SSH transport: the OpenSSH client with one master connection per
host, reused by every later command (ControlMaster/ControlPersist).

Connection reuse is what keeps hundreds of commands fast: after the first
command, each one is a new session on an open connection (no TCP or key
exchange). Master sockets live in a private 0700 directory of this process
and are closed by ``close()``/``close_all()`` (or after ``control_persist``
idle seconds if the process dies).

Host keys: ``StrictHostKeyChecking`` defaults to ``accept-new`` (a new host
is trusted on first use and remembered; a *changed* key is refused). Give
``StrictHostKeyChecking: "yes"`` and ``UserKnownHostsFile`` in the node's
ssh options to accept only known keys, as the lab inventory does.
``BatchMode`` is always on: no password or passphrase prompt can hang a
run. Only the key file's *path* is ever passed or shown, never its content.
"""

import atexit
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from chaosk3s.errors import SpecError
from chaosk3s.model import Access
from chaosk3s.transports.base import (
    DEFAULT_TIMEOUT,
    Command,
    NodeUnreachable,
    Result,
    checked,
    run_local,
)

DEFAULT_CONNECT_TIMEOUT = 5.0  # seconds for TCP connect and SSH banner
DEFAULT_CONTROL_PERSIST = 60  # seconds an idle master connection stays
SERVER_ALIVE_INTERVAL = 5  # seconds; with count 3 a dead link shows in 15
# ssh's own failures (exit 255) as opposed to the remote command's
_SSH_ERRORS = ("ssh:", "Connection refused", "Connection timed out",
               "No route to host", "Permission denied",
               "Host key verification failed", "Connection closed by",
               "kex_exchange_identification", "Could not resolve")
_control_dir: Path | None = None


def control_dir() -> Path:
    """This process's private directory for master sockets."""
    global _control_dir
    if _control_dir is None:
        atexit.register(close_all)
    if _control_dir is None or not _control_dir.is_dir():
        _control_dir = Path(tempfile.mkdtemp(prefix="chaosk3s-ssh-"))
    return _control_dir


def close_all() -> None:
    """Stop every master connection this process opened."""
    if _control_dir is None or not _control_dir.is_dir():
        return
    for socket in _control_dir.iterdir():
        _exit_master(str(socket))
    for _ in range(3):  # a master may still be unlinking its socket
        shutil.rmtree(_control_dir, ignore_errors=True)
        if not _control_dir.exists():
            return
        time.sleep(0.1)


def _exit_master(control_path: str) -> None:
    subprocess.run(["ssh", "-o", f"ControlPath={control_path}", "-O",
                    "exit", "chaosk3s-master"], capture_output=True,
                   check=False, timeout=10, stdin=subprocess.DEVNULL)


class SshTransport:
    """Runs commands on node over SSH as described by its Access."""

    kind = "ssh"

    def __init__(self, node: str, access: Access,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 control_persist: int = DEFAULT_CONTROL_PERSIST):
        if not access.host:
            raise SpecError(f"node {node}: transport ssh needs a host")
        self.node = node
        self.access = access
        self.management_port: int | None = access.port
        self.connect_timeout = connect_timeout
        self.control_persist = control_persist
        self.target = f"{access.user}@{access.host}:{access.port}"

    def options(self) -> list[str]:
        """ssh options: the inventory's first (ssh keeps the first value
        it sees for an option), then ours."""
        opts = [f"{key}={value}" for key, value in self.access.options]
        opts += [
            "BatchMode=yes",
            f"ConnectTimeout={max(1, round(self.connect_timeout))}",
            "StrictHostKeyChecking=accept-new",
            "ControlMaster=auto",
            f"ControlPath={control_dir()}/%C",
            f"ControlPersist={self.control_persist}",
            f"ServerAliveInterval={SERVER_ALIVE_INTERVAL}",
            "ServerAliveCountMax=3",
            "LogLevel=ERROR",
        ]
        if self.access.key_file:
            opts += [f"IdentityFile={self.access.key_file}",
                     "IdentitiesOnly=yes"]
        return [arg for opt in opts for arg in ("-o", opt)]

    def argv(self, command: Command | None = None) -> list[str]:
        """The local ssh argv that runs command on the node."""
        argv = ["ssh", *self.options(), "-p", str(self.access.port),
                "-l", self.access.user]
        if self.access.jump:
            argv += self._jump_args()
        argv.append(self.access.host)
        if command is not None:
            argv += ["--", remote_command(command)]
        return argv

    def _jump_args(self) -> list[str]:
        """Reach the node through the jump host with *our* options (ssh's
        own -J would drop the key file and known-hosts settings)."""
        user, host, port = parse_jump(self.access.jump, self.access.user)
        inner = ["ssh", *self.options(), "-p", str(port), "-l", user,
                 "-W", "[%h]:%p", host]
        # ProxyCommand expands %-tokens itself; ours are for the inner ssh
        text = " ".join(shlex.quote(arg.replace("%C", "%%C"))
                        for arg in inner)
        return ["-o", f"ProxyCommand={text}"]

    def run(self, command: Command, timeout: float = DEFAULT_TIMEOUT,
            check: bool = True, input: str | None = None,
            description: str | None = None) -> Result:
        result = run_local(self.node, self.argv(command), command, timeout,
                           input, description)
        if result.code == 255 and any(
                marker in result.stderr for marker in _SSH_ERRORS):
            raise NodeUnreachable(
                self.node, f"{self.target} over ssh (connect timeout "
                f"{self.connect_timeout:g}s)", result.stderr)
        return checked(result) if check else result

    def close(self) -> None:
        """Tear down the master connection(s) to this node."""
        if _control_dir is None or not _control_dir.is_dir():
            return
        argvs = [self.argv()]
        if self.access.jump:
            user, host, port = parse_jump(self.access.jump, self.access.user)
            argvs.append(["ssh", *self.options(), "-p", str(port), "-l",
                          user, host])
        for argv in argvs:
            subprocess.run([*argv, "-O", "exit"], capture_output=True,
                           check=False, timeout=10,
                           stdin=subprocess.DEVNULL)

    def __repr__(self) -> str:
        return f"SshTransport({self.node!r}, {self.target!r})"


def remote_command(command: Command) -> str:
    """One string for the remote login shell: scripts run under sh."""
    if isinstance(command, str):
        return "sh -c " + shlex.quote(command)
    return " ".join(shlex.quote(arg) for arg in command)


def parse_jump(jump: str, default_user: str) -> tuple[str, str, int]:
    """``[user@]host[:port]`` (``[v6addr]:port`` too) as its parts."""
    user, _, rest = jump.rpartition("@")
    host, port = rest, "22"
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port = tail.lstrip(":") or "22"
    elif rest.count(":") == 1:
        host, port = rest.split(":")
    if not host or not port.isdigit() or "," in rest:
        raise SpecError(f"jump host {jump!r} must be [user@]host[:port]")
    return user or default_user, host, int(port)
