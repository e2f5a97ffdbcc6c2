"""The lab's operator account, for `chaosk3s lab up --ssh-sudo`.

Real clusters are rarely reached as root: an operator logs in as themself
and escalates with sudo. With --ssh-sudo the lab reaches its nodes that
way: the inventory logs in as OPERATOR (no password, no home, shell
/bin/sh) with `become: sudo`, and a sudoers drop-in lets OPERATOR run
exactly `sh` as root without a password (chaosk3s runs every command as
`sudo -n sh -c SCRIPT`, so `sh` is the one command it needs; that is
root, which is what chaosk3s needs on a node).

The lab's namespaces share this machine's users and /etc, so the account
and the drop-in are this machine's: `lab down` removes both (found by
their marker whatever the lab's state says), together with anything sudo
keeps per user (its timestamp and lecture files), so nothing is left.
An existing account of that name that the lab did not make is never
touched: `lab up` refuses instead.
"""

import pwd
import shutil
from pathlib import Path

from chaosk3s.errors import EnvironmentProblem
from chaosk3s.lab.shell import require, run

OPERATOR = "ck3s-operator"
MARKER = "chaosk3s lab operator, removed by lab down"
SUDOERS = Path("/etc/sudoers.d/chaosk3s-lab")
_SUDO_STATE = (Path("/run/sudo/ts") / OPERATOR,
               Path("/var/lib/sudo/lectured") / OPERATOR)
# sh by both names: Debian's sudo finds it as /usr/bin/sh (secure_path),
# a node whose /bin is not merged into /usr as /bin/sh.
SUDOERS_TEXT = (
    f"# {MARKER}\n"
    f"Defaults:{OPERATOR} !lecture, !syslog, !pam_session, !use_pty\n"
    f"{OPERATOR} ALL=(root) NOPASSWD: /bin/sh, /usr/bin/sh\n")


def ours() -> bool:
    """True when OPERATOR exists and is the lab's."""
    try:
        return pwd.getpwnam(OPERATOR).pw_gecos == MARKER
    except KeyError:
        return False


def check_can_add() -> None:
    """Before anything is created: the tools exist and the name is free
    (or a leftover of an earlier lab)."""
    for binary in ("useradd", "userdel", "sudo", "visudo"):
        require(binary)
    try:
        pwd.getpwnam(OPERATOR)
    except KeyError:
        return
    if not ours():
        raise EnvironmentProblem(
            f"a user {OPERATOR} exists that the lab did not create; the "
            f"lab will not touch it: remove or rename it to use --ssh-sudo")


def add() -> None:
    """The account and its sudoers drop-in (checked by visudo first)."""
    check_can_add()
    if not ours():
        run([require("useradd"), "--system", "--no-create-home",
             "--home-dir", "/nonexistent", "--shell", "/bin/sh",
             "--comment", MARKER, "--password", "*", OPERATOR])
    # sudo skips include files whose name has a dot: the draft is inert.
    draft = SUDOERS.with_name(SUDOERS.name + ".new")
    draft.write_text(SUDOERS_TEXT)
    draft.chmod(0o440)
    try:
        run([require("visudo"), "-c", "-q", "-f", str(draft)])
        draft.replace(SUDOERS)
    finally:
        draft.unlink(missing_ok=True)


def remove() -> list[str]:
    """Remove what add() made; returns what was removed."""
    removed = []
    try:
        if MARKER in SUDOERS.read_text():
            SUDOERS.unlink()
            removed.append(str(SUDOERS))
    except OSError:
        pass
    if ours():
        run([shutil.which("userdel", path="/usr/sbin:/sbin") or "userdel",
             OPERATOR])
        removed.append(f"user {OPERATOR}")
    for path in _SUDO_STATE:
        if path.exists():
            path.unlink()
            removed.append(str(path))
    return removed
