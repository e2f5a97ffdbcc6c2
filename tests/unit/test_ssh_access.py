"""SSH as an operator expects, without a network: the inventory's host
key and become settings, what reaches ssh's command line, and sudo's
wrapper run for real by sh with a stand-in sudo."""

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from chaosk3s.errors import CommandFailed, SpecError
from chaosk3s.inventory import parse_inventory
from chaosk3s.model import Access
from chaosk3s.topology import build_topology
from chaosk3s.transports.ssh import SshTransport, remote_command


def inventory(transport: dict, **node) -> dict:
    return {"cluster": "c", "defaults": {"transport": transport},
            "nodes": [{"name": "agent-0", "address": "10.0.0.2", **node}]}


def access_of(transport: dict, **node) -> Access:
    parsed = parse_inventory(inventory(transport, **node), "inv.yaml")
    return parsed.nodes["agent-0"].access


def options(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "-o"]


def test_host_keys_are_checked_strictly_against_the_inventory_file():
    access = access_of({"type": "ssh", "known_hosts": "~/kh",
                        "become": "sudo", "user": "ops"})
    assert access.known_hosts == os.path.expanduser("~/kh")
    argv = SshTransport("agent-0", access).argv(["true"])
    opts = options(argv)
    assert "StrictHostKeyChecking=yes" in opts
    assert f"UserKnownHostsFile={access.known_hosts}" in opts
    assert "GlobalKnownHostsFile=/dev/null" in opts
    assert not [o for o in opts if "accept-new" in o]
    # the destination follows `--`: nothing after it is an option
    assert argv[-3:-1] == ["--", "10.0.0.2"]
    assert argv[-1].startswith("sudo -n -- sh -c ")


def test_accept_new_only_when_the_inventory_says_so():
    default = SshTransport("agent-0", access_of({"type": "ssh"}))
    assert "StrictHostKeyChecking=yes" in options(default.argv())
    assert not [o for o in options(default.argv()) if "KnownHosts" in o]
    asked = SshTransport("agent-0", access_of(
        {"type": "ssh", "host_key_checking": "accept-new"}))
    assert "StrictHostKeyChecking=accept-new" in options(asked.argv())


@pytest.mark.parametrize(("transport", "node", "message"), [
    ({"type": "ssh"}, {"address": "-oProxyCommand=touch /tmp/pwned"},
     "neither an IP address nor a host name"),
    ({"type": "ssh", "host": "a b"}, {}, "neither an IP address"),
    # A final newline: a pattern ending in `$` would let it by (a host
    # is stripped of blanks first, a user is not).
    ({"type": "ssh", "user": "root\n"}, {}, "is not a user name"),
    ({"type": "ssh", "user": "-oProxyCommand=x"}, {}, "is not a user name"),
    ({"type": "ssh", "jump": "-oProxyCommand=x"}, {}, "jump: host"),
    ({"type": "ssh", "jump": "-evil@bastion"}, {}, "jump: user"),
    ({"type": "ssh", "options": {"StrictHostKeyChecking": "no"}}, {},
     "known_hosts: PATH"),
    ({"type": "ssh", "options": {"UserKnownHostsFile": "/dev/null"}}, {},
     "is not taken from `options`"),
    ({"type": "ssh", "options": {"Proxy Command": "x"}}, {},
     "ssh_config keyword"),
    ({"type": "ssh", "options": {"LocalCommand": "a\nb"}}, {},
     "one-line value"),
    ({"type": "ssh", "known_hosts": "/a b"}, {}, "without blanks"),
    ({"type": "ssh", "key_file": "/k'ey"}, {}, "without blanks"),
    ({"type": "ssh", "host_key_checking": "no"}, {},
     "must be one of 'strict' or 'accept-new', not 'no'"),
    ({"type": "ssh", "become": "su"}, {}, "must be one of 'sudo', not 'su'"),
    ({"type": "ssh"}, {"name": "Agent_0;reboot"},
     "not a valid Kubernetes node name"),
])
def test_bad_inventory_access_is_refused_clearly(transport, node, message):
    with pytest.raises(SpecError, match=message) as caught:
        access_of(transport, **node)
    assert "inv.yaml" in str(caught.value)


def test_transport_refuses_an_option_like_host_before_running(tmp_path):
    marker = tmp_path / "pwned"
    access = Access("ssh", host=f"-oProxyCommand=touch {marker}")
    with pytest.raises(SpecError, match="may not start with '-'"):
        SshTransport("agent-0", access).run("true")
    assert not marker.exists()


def test_api_node_names_are_checked_before_any_command():
    inv = parse_inventory(inventory({"type": "ssh"}), "inv.yaml")
    hostile = {"metadata": {"name": "agent-0;reboot", "labels": {}},
               "status": {"addresses": [{"type": "InternalIP",
                                         "address": "10.0.0.9"}]}}
    with pytest.raises(SpecError, match="the API lists a node"):
        build_topology([hostile], inv)
    for name in ("$(reboot)", "agent-0\n"):
        with pytest.raises(SpecError, match="not a valid Kubernetes node"):
            inv.command("agent", "restart", name)
    assert inv.command("agent", "restart", "agent-0") == \
        "systemctl restart k3s-agent"


def fake_sudo(tmp_path: Path) -> dict:
    """A `sudo` on PATH that insists on -n and `--`, records its argv and
    runs the rest (as this user: the wrapper is what is tested)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sudo = bin_dir / "sudo"
    sudo.write_text('#!/bin/sh\n[ "$1" = -n ] && [ "$2" = -- ] || '
                    '{ echo "sudo: a password is required" >&2; exit 1; }\n'
                    f'printf "%s\\n" "$@" > {tmp_path}/sudo-argv\n'
                    'shift 2; unset SSH_CONNECTION; exec "$@"\n')
    sudo.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin",
            "SSH_CONNECTION": "10.0.0.1 5555 10.0.0.2 22"}


@pytest.mark.parametrize("command", [
    'printf "%s|" "$SSH_CONNECTION" "it\'s"',
    ["printf", "%s|", "two words", "it's", "$HOME"]])
def test_become_sudo_runs_the_command_through_sudo_n(tmp_path, command):
    env = fake_sudo(tmp_path)
    done = subprocess.run(["sh", "-c", remote_command(command, "sudo")],
                          capture_output=True, text=True, env=env,
                          check=True, timeout=10)
    argv = (tmp_path / "sudo-argv").read_text().splitlines()
    assert argv[:4] == ["-n", "--", "sh", "-c"]  # sudoers: sh only
    if isinstance(command, str):
        # sudo's env_reset drops SSH_CONNECTION; the wrapper restores it
        assert done.stdout == f"{env['SSH_CONNECTION']}|it's|"
    else:
        assert done.stdout == "two words|it's|$HOME|"


def test_a_sudo_that_wants_a_password_is_a_clear_error(tmp_path):
    """The stand-in refuses like sudo without NOPASSWD; the transport
    names the fix. ssh itself is a stand-in running the command here."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sudo").write_text(
        '#!/bin/sh\necho "sudo: a password is required" >&2; exit 1\n')
    (bin_dir / "ssh").write_text('#!/bin/sh\nfor last; do :; done\n'
                                 'exec sh -c "$last"\n')
    for tool in ("sudo", "ssh"):
        (bin_dir / tool).chmod(0o755)
    access = Access("ssh", host="10.0.0.2", user="ops", become="sudo")
    old = os.environ["PATH"]
    os.environ["PATH"] = f"{bin_dir}:{old}"
    try:
        with pytest.raises(CommandFailed, match="NOPASSWD") as caught:
            SshTransport("agent-0", replace(access)).run("true")
    finally:
        os.environ["PATH"] = old
    assert "node agent-0" in str(caught.value)
