"""Transports for real: ip netns exec, and OpenSSH to sshd in namespaces.

Namespaces ckt-a, ckt-b (sshd in both) and ckt-c (no sshd) on ckt-br0;
see tests/lab/ckt_net.py.
"""

import subprocess
import time
from dataclasses import replace

import pytest

from chaosk3s.errors import CommandFailed, SpecError
from chaosk3s.lab import procs
from chaosk3s.lab import ssh as labssh
from chaosk3s.model import Access, Node
from chaosk3s.transports import (
    NetnsTransport,
    NodeUnreachable,
    SshTransport,
    close_all,
    transport_for,
)
from chaosk3s.transports.ssh import control_dir, parse_jump, remote_command
from tests.lab import ckt_net

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def net():
    net = ckt_net.create(["a", "b", "c"])
    try:
        yield net
    finally:
        ckt_net.destroy(net)


@pytest.fixture(scope="module")
def layout(net, tmp_path_factory):
    layout = labssh.SshLayout(tmp_path_factory.mktemp("ckt") / "ssh")
    services = []
    try:
        for node in ("a", "b"):
            services.append(ckt_net.start_sshd(net, layout, node))
        yield layout
    finally:
        close_all()
        procs.stop(services)
        assert not [s for s in services if procs.pid_of(s)]


def ssh_to(net, layout, node: str, **kw) -> SshTransport:
    return SshTransport(node, labssh.client_access(layout, net.nodes[node]),
                        **kw)


def established_ssh(net, node: str) -> int:
    """TCP connections from the host to node's sshd, seen by the node."""
    out = net.exec(node, "ss", "-Htn", "state", "established",
                   "( sport = :22 )").stdout
    return sum(ckt_net.HOST_ADDRESS + ":" in line for line in
               out.splitlines())


# -- netns ----------------------------------------------------------------

def test_netns_runs_scripts_and_argv_inside_the_namespace(net):
    t = NetnsTransport("a", ckt_net.PREFIX + "a")
    out = t.run("ip -o -4 addr show dev eth0 | awk '{print $4}'").stdout
    assert out.strip() == net.nodes["a"] + "/24"
    result = t.run(["sh", "-c", 'printf "%s|" "$@"', "x", "two words",
                    "it's"])
    assert result.stdout == "two words|it's|" and result.ok
    assert t.run("cat", input="fed").stdout == "fed"


def test_netns_failure_names_node_command_code_and_stderr():
    t = NetnsTransport("a", ckt_net.PREFIX + "a")
    with pytest.raises(CommandFailed) as info:
        t.run("echo boom >&2; exit 3", description="explode on purpose")
    err = info.value
    assert (err.node, err.code, err.stderr.strip()) == ("a", 3, "boom")
    assert str(err) == "on node a: `explode on purpose` exited 3: boom"
    assert t.run("exit 4", check=False).code == 4


def test_netns_timeout_and_missing_namespace_are_clear_errors():
    t = NetnsTransport("a", ckt_net.PREFIX + "a")
    started = time.monotonic()
    with pytest.raises(CommandFailed, match="timed out after 0.5s"):
        t.run("sleep 5", timeout=0.5)
    assert time.monotonic() - started < 3
    nowhere = ckt_net.PREFIX + "nowhere"
    with pytest.raises(NodeUnreachable, match=f"namespace {nowhere}"):
        NetnsTransport("x", nowhere).run("true")


def test_transport_for_follows_the_inventory_access():
    netns = Node("a", "agent", "10.0.0.1", None,
                 Access("netns", namespace=ckt_net.PREFIX + "a"))
    assert isinstance(transport_for(netns), NetnsTransport)
    ssh = Node("b", "agent", "10.0.0.2", None,
               Access("ssh", host="10.0.0.2"))
    assert transport_for(ssh, connect_timeout=2).connect_timeout == 2
    for access in (None, Access("telnet"), Access("ssh"), Access("netns")):
        with pytest.raises(SpecError, match="node z"):
            transport_for(Node("z", "agent", "10.0.0.3", None, access))


# -- ssh argv (pure) ------------------------------------------------------

def test_ssh_argv_puts_inventory_options_first_and_never_key_contents():
    access = Access("ssh", host="10.0.0.5", port=2222, user="ops",
                    key_file="/keys/id", options=(
                        ("ConnectionAttempts", "3"),))
    argv = SshTransport("n", access).argv(["echo", "a b"])
    opts = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-o"]
    assert opts[0] == "ConnectionAttempts=3"  # ssh keeps the first
    for wanted in ("BatchMode=yes", "ControlMaster=auto",
                   "StrictHostKeyChecking=yes",
                   "IdentityFile=/keys/id", "IdentitiesOnly=yes",
                   f"ControlPath={control_dir()}/%C"):
        assert wanted in opts
    assert argv[argv.index("-l") + 1] == "ops"
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[-3:] == ["--", "10.0.0.5", "echo 'a b'"]
    assert remote_command("echo 'x'") == "sh -c 'echo '\"'\"'x'\"'\"''"


def test_jump_hosts_parse_and_use_our_options():
    assert parse_jump("bastion", "root") == ("root", "bastion", 22)
    assert parse_jump("ops@bastion:2200", "root") == ("ops", "bastion", 2200)
    assert parse_jump("[fd00::1]:23", "root") == ("root", "fd00::1", 23)
    with pytest.raises(SpecError, match="jump host"):
        parse_jump("ops@bastion:ssh", "root")
    access = Access("ssh", host="10.0.0.5", jump="ops@bastion",
                    key_file="/keys/id")
    argv = SshTransport("n", access).argv()
    proxy = next(o for o in argv if o.startswith("ProxyCommand="))
    assert "-W '[%h]:%p'" in proxy and "IdentityFile=/keys/id" in proxy
    assert "%%C" in proxy and proxy.endswith("-- bastion")


# -- sshd from chaosk3s.lab.ssh -------------------------------------------

def test_lab_sshd_config_is_key_only_root_without_pam(net, layout):
    effective = labssh.check_config(layout, "a")
    assert effective["passwordauthentication"] == "no"
    assert effective["kbdinteractiveauthentication"] == "no"
    assert effective["usepam"] == "no"
    assert effective["permitrootlogin"] in ("prohibit-password",
                                            "without-password")
    assert effective["listenaddress"] == f"{net.nodes['a']}:22"
    assert layout.pidfile("a").read_text().strip().isdigit()
    inv = labssh.inventory_transport(layout, net.nodes["a"])
    assert inv["type"] == "ssh" and inv["key_file"] == str(layout.client_key)
    assert inv["known_hosts"] == str(layout.known_hosts)
    assert "host_key_checking" not in inv  # strict, the default


def test_ssh_runs_commands_with_the_lab_key_and_known_hosts(net, layout):
    t = ssh_to(net, layout, "a")
    seen = t.run('echo "$SSH_CONNECTION"; id -u').stdout.split()
    assert seen[0] == ckt_net.HOST_ADDRESS and seen[2] == net.nodes["a"]
    assert seen[-1] == "0"
    assert t.run(["printf", "%s|", "two words", "it's", "$HOME"]
                 ).stdout == "two words|it's|$HOME|"
    assert t.run("cat", input="fed").stdout == "fed"
    with pytest.raises(CommandFailed) as info:
        t.run("echo nope >&2; exit 7")
    assert (info.value.node, info.value.code) == ("a", 7)
    assert "nope" in str(info.value) and "exit 7" in str(info.value)


def test_hundred_commands_reuse_one_master_connection(net, layout):
    t = ssh_to(net, layout, "b")
    t.close()
    t.run("true")  # opens the master
    started = time.monotonic()
    for i in range(100):
        assert t.run(["echo", str(i)]).stdout == f"{i}\n"
    elapsed = time.monotonic() - started
    print(f"\n100 commands over one ssh master: {elapsed:.2f}s "
          f"({elapsed * 10:.0f} ms each)")
    assert established_ssh(net, "b") == 1
    assert elapsed < 60  # generous for a loaded 2-core machine
    t.close()
    assert ckt_net.wait_for(lambda: established_ssh(net, "b") == 0, 10)
    assert t.run("echo again").stdout == "again\n"  # a new master
    t.close()


def test_unreachable_host_fails_within_the_connect_timeout(net, layout):
    access = labssh.client_access(layout, ckt_net.UNUSED_ADDRESS)
    t = SshTransport("ghost", access, connect_timeout=2)
    started = time.monotonic()
    with pytest.raises(NodeUnreachable) as info:
        t.run("true")
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert "node ghost" in message and ckt_net.UNUSED_ADDRESS in message
    assert "connect timeout 2s" in message and elapsed < 6
    refused = ssh_to(net, layout, "c", connect_timeout=2)  # no sshd on c
    started = time.monotonic()
    with pytest.raises(NodeUnreachable, match="Connection refused"):
        refused.run("true")
    assert time.monotonic() - started < 2


def test_wrong_key_or_unknown_host_key_fail_clearly_without_secrets(
        net, layout, tmp_path):
    close_all()  # a live master would be reused whatever the key
    other = tmp_path / "other_key"
    labssh._keygen(other, "not-authorized")
    access = labssh.client_access(layout, net.nodes["a"])
    wrong_key = SshTransport("a", replace(access, key_file=str(other)))
    with pytest.raises(NodeUnreachable, match="Permission denied") as info:
        wrong_key.run("true")
    secret = other.read_text().splitlines()[1]
    assert secret not in str(info.value) and str(other) not in str(
        info.value.stderr)
    unknown = replace(access, known_hosts=str(tmp_path / "empty"))
    with pytest.raises(NodeUnreachable, match="Host key verification"):
        SshTransport("a", unknown).run("true")
    assert not (tmp_path / "empty").exists()  # nothing was trusted
    # accept-new, asked for: the first key is remembered, then checked
    learns = replace(unknown, host_key_checking="accept-new")
    assert SshTransport("a", learns).run("echo ok").stdout == "ok\n"
    found = subprocess.run(["ssh-keygen", "-F", net.nodes["a"], "-f",
                            str(tmp_path / "empty")], capture_output=True,
                           check=False, timeout=10)
    assert found.returncode == 0  # remembered (Debian hashes the name)
    close_all()
    labssh._keygen(tmp_path / "other_host_key", "impostor")
    (tmp_path / "empty").write_text(
        (tmp_path / "empty").read_text().split()[0] + " " + " ".join(
            (tmp_path / "other_host_key.pub").read_text().split()[:2])
        + "\n")
    with pytest.raises(NodeUnreachable, match="Host key verification"):
        SshTransport("a", learns).run("true")  # a changed key: refused


def test_jump_host_reaches_a_node_through_another(net, layout):
    access = labssh.client_access(layout, net.nodes["b"])
    via_a = SshTransport("b", replace(access,
                                      jump=f"root@{net.nodes['a']}"))
    try:
        seen = via_a.run('echo "$SSH_CONNECTION"').stdout.split()
        assert seen[0] == net.nodes["a"]  # b sees a, not the host
        assert seen[2] == net.nodes["b"]
    finally:
        via_a.close()
