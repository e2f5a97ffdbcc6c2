"""The SSH transport: the OpenSSH client with one master connection per
host, reused by every later command (ControlMaster/ControlPersist).

Connection reuse is what keeps hundreds of commands fast: after the first
command, each one is a new session on an open connection (no TCP or key
exchange). Master sockets live in a private 0700 directory of this process
and are closed by ``close()``/``close_all()`` (or after ``control_persist``
idle seconds if the process dies).

Host keys are verified as an operator's ssh does: ``StrictHostKeyChecking
yes`` against the inventory's ``known_hosts`` file (then only it counts:
``GlobalKnownHostsFile /dev/null``), or ssh's own known_hosts files when
it gives none. ``accept-new`` (trust a new host on first use, refuse a
changed key) only when the inventory says ``host_key_checking:
accept-new``. ``BatchMode`` is always on: no password or passphrase
prompt can hang a run. Only the key file's *path* is ever passed or shown,
never its content.

``become: sudo`` logs in as the inventory's user and runs every command
as root through ``sudo -n sh -c`` (never a prompt: a password it would
need is a clear error); sudo's clean environment gets SSH_CONNECTION
back, as the fault scripts read the runner's address from it.

The destination comes after ``--`` and is checked (chaosk3s.names), so no
host name can be read as an ssh option.
"""

import atexit
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from chaosk3s import names
from chaosk3s.errors import CommandFailed, SpecError
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
        names.ssh_host(access.host, f"node {node}")
        names.ssh_user(access.user, f"node {node}")
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
            *self._host_key_options(),
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

    def _host_key_options(self) -> list[str]:
        checking = "accept-new" if \
            self.access.host_key_checking == "accept-new" else "yes"
        opts = [f"StrictHostKeyChecking={checking}"]
        if self.access.known_hosts:
            opts += [f"UserKnownHostsFile={self.access.known_hosts}",
                     "GlobalKnownHostsFile=/dev/null"]
        return opts

    def argv(self, command: Command | None = None,
             control: str | None = None) -> list[str]:
        """The local ssh argv that runs command on the node (or sends the
        master connection the control command, e.g. exit)."""
        argv = ["ssh", *self.options(), "-p", str(self.access.port),
                "-l", self.access.user]
        if self.access.jump:
            argv += self._jump_args()
        if control:
            argv += ["-O", control]
        argv += ["--", self.access.host]
        if command is not None:
            argv.append(remote_command(command, self.access.become))
        return argv

    def _jump_args(self) -> list[str]:
        """Reach the node through the jump host with *our* options (ssh's
        own -J would drop the key file and known-hosts settings)."""
        user, host, port = parse_jump(self.access.jump, self.access.user)
        inner = ["ssh", *self.options(), "-p", str(port), "-l", user,
                 "-W", "[%h]:%p", "--", host]
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
        if self.access.become and _sudo_refused(result):
            raise CommandFailed(
                self.node, result.command, result.code,
                f"{result.stderr.strip()}\n(become: sudo needs `sudo -n` "
                f"to run sh as root without a password for "
                f"{self.access.user} on {self.access.host}: a sudoers "
                f"rule such as `{self.access.user} ALL=(root) NOPASSWD: "
                f"/bin/sh, /usr/bin/sh`)")
        return checked(result) if check else result

    def close(self) -> None:
        """Tear down the master connection(s) to this node."""
        if _control_dir is None or not _control_dir.is_dir():
            return
        argvs = [self.argv(control="exit")]
        if self.access.jump:
            user, host, port = parse_jump(self.access.jump, self.access.user)
            argvs.append(["ssh", *self.options(), "-p", str(port), "-l",
                          user, "-O", "exit", "--", host])
        for argv in argvs:
            subprocess.run(argv, capture_output=True, check=False,
                           timeout=10, stdin=subprocess.DEVNULL)

    def __repr__(self) -> str:
        return f"SshTransport({self.node!r}, {self.target!r})"


# Under sudo: SSH_CONNECTION (which sudo's env_reset drops) comes back
# from the login shell's own, then the command runs as root.
_AS_ROOT = 'SSH_CONNECTION=$1; export SSH_CONNECTION; exec sh -c "$2"'


def remote_command(command: Command, become: str | None = None) -> str:
    """One string for the remote login shell: scripts run under sh; with
    become sudo, as root through `sudo -n` (sh the only command sudo
    runs)."""
    if become == "sudo":
        script = command if isinstance(command, str) else \
            " ".join(shlex.quote(arg) for arg in command)
        return (f"sudo -n -- sh -c {shlex.quote(_AS_ROOT)} sh "
                f'"${{SSH_CONNECTION:-}}" {shlex.quote(script)}')
    if isinstance(command, str):
        return "sh -c " + shlex.quote(command)
    return " ".join(shlex.quote(arg) for arg in command)


def _sudo_refused(result) -> bool:
    """sudo itself said no (a password needed, a rule missing), as
    opposed to the command it ran failing."""
    return result.code != 0 and any(marker in result.stderr for marker in (
        "sudo: a password is required", "is not allowed to execute",
        "is not in the sudoers file", "sudo: a terminal is required",
        "sudo: command not found", "sudo: not found"))


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
