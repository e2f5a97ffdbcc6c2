"""The lab's operator account, for `chaosk3s lab up --ssh-sudo`.

Real clusters are rarely reached as root: an operator logs in as themself
and escalates with sudo. With --ssh-sudo the lab reaches its nodes that
way: the inventory logs in as OPERATOR (no password, no home, shell
/bin/sh) with `become: sudo`, and a sudoers drop-in lets OPERATOR run
exactly `sh` as root without a password (chaosk3s runs every command as
`sudo -n sh -c SCRIPT`, so `sh` is the one command it needs; that is
root, which is what chaosk3s needs on a node).

The lab's namespaces share this machine's users and /etc, so the account
and the drop-in are this machine's, one of each per lab name
(chaosk3s.namedlabs: ck3s-operator for the default lab, ck3sN-operator
for lab N): `lab down` removes its lab's two (found by
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
from chaosk3s.namedlabs import LabNames

MARKER = "chaosk3s lab operator, removed by lab down"
SUDOERS_DIR = Path("/etc/sudoers.d")
OPERATOR = LabNames().operator  # the default lab's account
SUDOERS = SUDOERS_DIR / LabNames().sudoers


def _sudo_state(user: str) -> tuple[Path, ...]:
    return (Path("/run/sudo/ts") / user,
            Path("/var/lib/sudo/lectured") / user)


def sudoers_text(user: str) -> str:
    # sh by both names: Debian's sudo finds it as /usr/bin/sh
    # (secure_path), a node whose /bin is not merged into /usr as /bin/sh.
    return (f"# {MARKER}\n"
            f"Defaults:{user} !lecture, !syslog, !pam_session, !use_pty\n"
            f"{user} ALL=(root) NOPASSWD: /bin/sh, /usr/bin/sh\n")


def ours(names: LabNames) -> bool:
    """True when the lab's operator exists and is the lab's."""
    try:
        return pwd.getpwnam(names.operator).pw_gecos == MARKER
    except KeyError:
        return False


def check_can_add(names: LabNames) -> None:
    """Before anything is created: the tools exist and the name is free
    (or a leftover of an earlier lab)."""
    for binary in ("useradd", "userdel", "sudo", "visudo"):
        require(binary)
    try:
        pwd.getpwnam(names.operator)
    except KeyError:
        return
    if not ours(names):
        raise EnvironmentProblem(
            f"a user {names.operator} exists that the lab did not create; "
            f"the lab will not touch it: remove or rename it to use "
            f"--ssh-sudo")


def add(names: LabNames) -> None:
    """The account and its sudoers drop-in (checked by visudo first)."""
    check_can_add(names)
    user, sudoers = names.operator, SUDOERS_DIR / names.sudoers
    if not ours(names):
        run([require("useradd"), "--system", "--no-create-home",
             "--home-dir", "/nonexistent", "--shell", "/bin/sh",
             "--comment", MARKER, "--password", "*", user])
    # sudo skips include files whose name has a dot: the draft is inert.
    draft = sudoers.with_name(sudoers.name + ".new")
    draft.write_text(sudoers_text(user))
    draft.chmod(0o440)
    try:
        run([require("visudo"), "-c", "-q", "-f", str(draft)])
        draft.replace(sudoers)
    finally:
        draft.unlink(missing_ok=True)


def remove(names: LabNames) -> list[str]:
    """Remove what add() made for this lab; returns what was removed."""
    removed = []
    sudoers = SUDOERS_DIR / names.sudoers
    try:
        if MARKER in sudoers.read_text():
            sudoers.unlink()
            removed.append(str(sudoers))
    except OSError:
        pass
    if ours(names):
        run([shutil.which("userdel", path="/usr/sbin:/sbin") or "userdel",
             names.operator])
        removed.append(f"user {names.operator}")
    for path in _sudo_state(names.operator):
        if path.exists():
            path.unlink()
            removed.append(str(path))
    return removed
