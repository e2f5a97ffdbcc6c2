"""Node actions read their effect back from the node (root-free).

A fake systemd node answers through the recording transport; the real
shell runs the detached wrapper, so quoting is tested for real.
"""

import subprocess
import time

import pytest

from chaosk3s.faults import service
from chaosk3s.faults.service import EffectNotSeen, parse_status
from chaosk3s.transports.base import NodeUnreachable
from chaosk3s.transports.recording import RecordingTransport

COMMANDS = {"restart": "systemctl restart k3s",
            "stop": "systemctl stop k3s", "start": "systemctl start k3s",
            "reboot": "systemctl reboot", "status": "systemctl show k3s",
            "boot_id": "cat /proc/sys/kernel/random/boot_id",
            "serving": "curl -fks https://127.0.0.1:6443/ping"}


class FakeNode:
    """A systemd node: k3s unit state, a boot id, a reboot that takes it
    away for `down_reads` reads. `broken` makes an action's command fail
    (exit 1) and `noop` makes it exit 0 and do nothing."""

    def __init__(self, broken: str = "", noop: str = ""):
        self.pid, self.active, self.since = 100, "active", 5_000_000
        self.boot, self.down_reads, self.serving_after = "boot-1", 0, 0
        self.broken, self.noop = broken, noop
        self.reboot_log = ""

    def __call__(self, node: str, command: str):
        if self.down_reads:
            self.down_reads -= 1
            raise NodeUnreachable(node, "ssh", "Connection timed out")
        for action in ("restart", "stop", "start"):
            if command == COMMANDS[action]:
                return self._act(action)
        if command == COMMANDS["status"]:
            return (f"MainPID={self.pid if self.active == 'active' else 0}\n"
                    f"ActiveState={self.active}\n"
                    f"ActiveEnterTimestampMonotonic={self.since}\n")
        if command == COMMANDS["boot_id"]:
            return f"{self.boot}\n"
        if command == COMMANDS["serving"]:
            self.serving_after -= 1
            return "pong" if self.serving_after < 0 else (7, "", "refused")
        if "setsid nohup" in command:
            self._reboot()
            return "issued\n"
        if command.startswith("boot=$("):
            return f"{self.boot}\n{self.reboot_log}"
        if command.startswith("rm -f"):
            return ""
        raise AssertionError(f"unexpected command {command!r}")

    def _act(self, action: str):
        if self.broken == action:
            return 1, "", "Failed to restart k3s.service: Access denied"
        if self.noop == action:
            return ""
        if action in ("restart", "start"):
            self.pid, self.active, self.since = self.pid + 1, "active", \
                self.since + 1000
        else:
            self.active = "inactive"
        return ""

    def _reboot(self) -> None:
        if self.broken == "reboot":
            self.reboot_log = "Access denied\nchaosk3s-exit 1\n"
        elif self.noop != "reboot":
            self.boot, self.down_reads = "boot-2", 3


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setattr(service, "POLL", 0.01)


def transport(node: FakeNode) -> RecordingTransport:
    return RecordingTransport("agent-0", node)


def test_parse_status_reads_systemctl_show():
    state = parse_status("ActiveState=active\nMainPID=42\n"
                         "ActiveEnterTimestampMonotonic=123\nOther=x=y\n")
    assert (state.main_pid, state.active_state, state.since) == (42,
                                                                 "active",
                                                                 123)
    assert parse_status("").active_state == "unknown"


def test_restart_is_seen_as_a_new_process():
    node = FakeNode()
    done = service.restart(transport(node), COMMANDS, bound=1)
    assert done["before"]["main_pid"] == 100
    assert done["after"]["main_pid"] == 101
    assert done["after"]["active_state"] == "active"


@pytest.mark.parametrize("action", ["restart", "stop"])
def test_a_command_that_does_nothing_fails_after_the_bound(action):
    node = FakeNode(noop=action)
    started = time.monotonic()
    with pytest.raises(EffectNotSeen) as caught:
        getattr(service, action)(transport(node), COMMANDS, bound=0.3)
    assert 0.3 <= time.monotonic() - started < 2
    error = caught.value
    assert (error.node, error.action) == ("agent-0", action)
    assert COMMANDS[action] in str(error)
    assert "MainPID=100 ActiveState=active" in error.seen


def test_a_failing_command_fails_at_once_with_its_stderr():
    node = FakeNode(broken="restart")
    started = time.monotonic()
    with pytest.raises(EffectNotSeen, match="Access denied"):
        service.restart(transport(node), COMMANDS, bound=30)
    assert time.monotonic() - started < 1


def test_start_on_a_server_waits_until_it_serves():
    node = FakeNode()
    node.active, node.serving_after = "inactive", 3
    done = service.start(transport(node), COMMANDS, bound=2, server=True)
    assert done["serving"] == "pong"
    node.active, node.serving_after = "inactive", 10_000
    with pytest.raises(EffectNotSeen, match="serving"):
        service.start(transport(node), COMMANDS, bound=0.2, server=True)


def test_start_on_an_agent_does_not_ask_for_serving():
    node = FakeNode()
    node.active = "inactive"
    rec = transport(node)
    service.start(rec, COMMANDS, bound=1, server=False)
    assert COMMANDS["serving"] not in [c.text for c in rec.calls]


def test_reboot_is_seen_as_a_new_boot_id_through_the_outage():
    node = FakeNode()
    rec = transport(node)
    done = service.reboot(rec, COMMANDS, bound=2, tag="f1")
    assert (done["boot_id_before"], done["boot_id_after"]) == ("boot-1",
                                                               "boot-2")
    assert done["unanswered_reads"] == 3
    issued = next(c.text for c in rec.calls if "setsid" in c.text)
    assert "/run/chaosk3s/agent-0/reboot-f1.log" in issued


def test_reboot_command_that_exits_non_zero_fails_at_once():
    node = FakeNode(broken="reboot")
    started = time.monotonic()
    with pytest.raises(EffectNotSeen, match="exited 1: Access denied"):
        service.reboot(transport(node), COMMANDS, bound=30, tag="f1")
    assert time.monotonic() - started < 1


def test_reboot_that_never_happens_fails_after_the_bound():
    with pytest.raises(EffectNotSeen, match="boot id still boot-1"):
        service.reboot(transport(FakeNode(noop="reboot")), COMMANDS,
                       bound=0.2, tag="f1")


@pytest.mark.parametrize("command,expected", [
    ("A='x y' sh -c 'echo \"$A\"'", "x y"),
    ("echo one && echo two", "one\ntwo"),
    ("B=1; echo \"${B}$(echo 2)\"", "12"),
])
def test_detached_commands_run_as_written(tmp_path, command, expected):
    """The wrapper quotes nothing away: environment assignments, quotes,
    `&&` and `${...}` run as a user wrote them (real sh)."""
    log = tmp_path / "node" / "job.log"
    out = subprocess.run(["sh", "-c", service.detached(command, str(log))],
                         capture_output=True, text=True, check=True,
                         timeout=10)
    assert out.stdout.strip() == "issued"
    deadline = time.monotonic() + 5
    while "chaosk3s-exit" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the detached job never ended"
        time.sleep(0.02)
    assert log.read_text() == f"{expected}\nchaosk3s-exit 0\n"
