"""Running host commands for the lab, with errors that name the command."""

import shutil
import subprocess

from chaosk3s.errors import CommandFailed, EnvironmentProblem

# The Debian package that provides each host binary the lab needs.
PACKAGES = {"ip": "iproute2", "iptables": "iptables",
            "iptables-save": "iptables", "sshd": "openssh-server",
            "visudo": "sudo", "useradd": "passwd", "userdel": "passwd"}


def require(binary: str) -> str:
    """The path of a host binary, or an error naming its Debian package."""
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin")
    if not path:
        package = PACKAGES.get(binary, binary)
        raise EnvironmentProblem(
            f"`{binary}` is not installed; install it with "
            f"`apt-get install -y {package}`")
    return path


def run(args: list[str], node: str = "host", check: bool = True,
        timeout: float = 30) -> subprocess.CompletedProcess:
    """Run a command, raising CommandFailed (node, command, stderr)."""
    try:
        result = subprocess.run(args, capture_output=True, text=True,
                                check=False, timeout=timeout,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(node, args, -1,
                            f"timed out after {timeout}s") from exc
    if check and result.returncode != 0:
        raise CommandFailed(node, args, result.returncode, result.stderr)
    return result


def in_netns(namespace: str, args: list[str]) -> list[str]:
    """The argv that runs args inside a network namespace."""
    return ["ip", "netns", "exec", namespace, *args]
