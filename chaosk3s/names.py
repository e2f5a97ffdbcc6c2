"""Names and addresses checked before they reach a command line.

Node names (from the API or an inventory) become part of shell commands
(`{node}` in an inventory command), file names and iptables comments; SSH
hosts and users become ssh's arguments, where `-oProxyCommand=...` would
be read as an option. Each is checked against what it can legitimately
be, and refused with an error naming it and saying what is allowed;
nothing has run when it is refused.
"""

import ipaddress
import re

from chaosk3s.errors import SpecError

# A Kubernetes node name is a DNS-1123 subdomain
# (k8s.io/apimachinery/pkg/util/validation, IsDNS1123Subdomain).
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
# Used with fullmatch: a pattern ending in `$` lets a final newline by.
_NODE = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_HOST_LABEL = r"[A-Za-z0-9]([-A-Za-z0-9_]*[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_HOST_LABEL}(\.{_HOST_LABEL})*\.?")
# POSIX portable user names (plus the `.` and `-` useradd accepts), never
# starting with `-`.
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
_OPTION = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")


def node_name(name: object, where: str = "node name") -> str:
    """name if it is a valid Kubernetes node name; SpecError if not."""
    text = str(name)
    problem = node_name_problem(text)
    if problem:
        raise SpecError(f"{where} {problem}")
    return text


def node_name_problem(text: str) -> str | None:
    """Why text is not a valid Kubernetes node name, or None."""
    if len(text) <= 253 and _NODE.fullmatch(text):
        return None
    return (f"{_shown(text)} is not a valid Kubernetes node name "
            f"(lower-case letters, digits, '-' and '.', at most 253 "
            f"characters); it is not put into any command")


def ssh_host(host: object, where: str) -> str:
    """An IP address or a DNS host name; SpecError otherwise."""
    text = str(host).strip()
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") \
        else text
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if len(text) > 253 or not _HOSTNAME.fullmatch(text):
        raise SpecError(
            f"{where}: host {_shown(text)} is neither an IP address nor a "
            f"host name (letters, digits, '-', '_' and '.'; it may not "
            f"start with '-', which ssh would read as an option)")
    return text


def ssh_user(user: object, where: str) -> str:
    text = str(user)
    if not _USER.fullmatch(text):
        raise SpecError(
            f"{where}: user {_shown(text)} is not a user name (letters, "
            f"digits, '_', '.' and '-', not starting with '-')")
    return text


def ssh_option(key: object, value: object, where: str) -> tuple[str, str]:
    """An ssh -o KEY=VALUE pair: a plain option name, a one-line value."""
    name, text = str(key), str(value)
    if not _OPTION.fullmatch(name) or any(c in text for c in "\n\r\0"):
        raise SpecError(
            f"{where}: ssh option {_shown(name)} must be an ssh_config "
            f"keyword with a one-line value")
    return name, text


def ssh_path(path: object, where: str, field: str) -> str:
    """A file path ssh reads from -o FIELD=PATH: ssh splits such values at
    blanks and quotes, so a path with them would name other files."""
    text = str(path)
    if not text or any(c.isspace() or c in "\"'" for c in text):
        raise SpecError(f"{where}: {field} {_shown(text)} must be a file "
                        f"path without blanks or quotes")
    return text


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:80] + "…")
