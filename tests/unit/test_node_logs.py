"""Per-node log excerpts around each transition: what is asked of each
node over its transport (the seam: RecordingTransport plays the node),
how the answer is bounded and redacted, that a node which cannot be read
is recorded and never ends the run; the lab's own `logs` command on real
log files; the report showing them escaped."""

import json
import logging
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chaosk3s import node_logs
from chaosk3s.errors import NodeUnreachable, SpecError
from chaosk3s.inventory import parse_inventory
from chaosk3s.lab import nodelogs
from chaosk3s.lab.access import lab_commands
from chaosk3s.lab.k3s.__main__ import log_format
from chaosk3s.lab.spec import default_spec
from chaosk3s.lab.state import LabState
from chaosk3s.model import Access, Node
from chaosk3s.redact import REDACTED, Redactor
from chaosk3s.transports.recording import RecordingTransport
from tests.unit.test_node_events import page as events_page

T0 = datetime(2026, 11, 29, 15, 40, 0, tzinfo=UTC)
JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
needs_journal_tools = pytest.mark.skipif(
    not (shutil.which("journalctl") and Path(JOURNAL_REMOTE).exists()),
    reason="Debian packages `systemd` and `systemd-journal-remote` are not "
    "installed (scripts/setup --tests installs them)")
NETNS = Access(transport="netns", namespace="ns")
INVENTORY = parse_inventory({
    "cluster": "prod", "defaults": {"transport": {
        "type": "ssh", "host": "10.0.0.1"}},
    "nodes": [{"name": "server-0", "role": "server"},
              {"name": "agent-0", "role": "agent"}]}, "inv.yaml")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def section(*outages: tuple[str, float, float | None]) -> dict:
    nodes: dict = {}
    for name, down, up in outages:
        nodes.setdefault(name, {"outages": []})["outages"].append(
            {"not_ready_at": at(down).isoformat(),
             "ready_at": at(up).isoformat() if up is not None else None})
    return {"nodes": nodes}


def journal_line(seconds: float, text: str, host: str = "agent-0") -> str:
    """A line as `journalctl -o short-iso-precise --utc` prints it."""
    return (f"{at(seconds).strftime('%Y-%m-%dT%H:%M:%S.%f')}+00:00 {host} "
            f"k3s[812]: {text}")


def node(name: str, role: str = "agent", access: Access | None = NETNS
         ) -> Node:
    return Node(name, role, "10.0.0.1", None, access)


def read(sec: dict, nodes: dict, handler, redact=lambda text: text
         ) -> tuple[dict, dict[str, RecordingTransport]]:
    transports: dict[str, RecordingTransport] = {}

    def transport_for(n: Node) -> RecordingTransport:
        return transports.setdefault(n.name, RecordingTransport(
            n.name, handler))
    found = node_logs.read_node_logs(
        sec, nodes, transport_for,
        lambda n: INVENTORY.command(n.role, "logs", n.name), redact)
    return found, transports


def test_each_transition_asks_the_units_journal_for_its_window():
    sec = section(("agent-0", 30, 50), ("server-0", 31, None))
    found, transports = read(
        sec, {"agent-0": node("agent-0"),
              "server-0": node("server-0", "server")},
        lambda _n, _c: journal_line(30, "lost the server"))
    epoch = int(T0.timestamp())
    sent = [c.text for c in transports["agent-0"].calls]
    journal = ("journalctl --no-pager --quiet --utc "
               "--output=short-iso-precise")
    assert sent == [
        f"{journal} --since=@{epoch + 10} --until=@{epoch + 40} -u k3s-agent",
        f"{journal} --since=@{epoch + 30} --until=@{epoch + 60} -u k3s-agent"]
    assert [c.text for c in transports["server-0"].calls] == [
        f"{journal} --since=@{epoch + 11} --until=@{epoch + 41} -u k3s"]
    excerpts = found["agent-0"]["excerpts"]
    assert [(e["transition"], e["at"]) for e in excerpts] == [
        ("NotReady", at(30).isoformat()), ("Ready", at(50).isoformat())]
    assert excerpts[0]["lines"] == [journal_line(30, "lost the server")]
    assert found["agent-0"]["error"] is None
    # the Ready never came: one excerpt
    assert len(found["server-0"]["excerpts"]) == 1


def test_a_node_without_outages_is_not_asked():
    sec = {"nodes": {"agent-0": {"outages": []}}}
    found, transports = read(sec, {"agent-0": node("agent-0")},
                             lambda _n, _c: "")
    assert found == {} and transports == {}


def test_the_lines_nearest_the_transition_are_kept_two_before_to_one_after():
    lines = [journal_line(10 + i * 0.25, f"line {i}") for i in range(120)]
    found, _ = read(section(("agent-0", 30, None)),
                    {"agent-0": node("agent-0")},
                    lambda _n, _c: "\n".join(lines))
    [excerpt] = found["agent-0"]["excerpts"]
    kept = excerpt["lines"]
    assert len(kept) == node_logs.MAX_LINES and excerpt["truncated"]
    split = lines.index(journal_line(30, "line 80"))  # at the moment
    # 80 is at the moment itself, so "before" (not after) it
    assert kept == lines[split + 1 - 27:split + 1 + 13]


def test_long_lines_are_clipped_and_an_excerpt_is_bounded_in_bytes():
    lines = [journal_line(29, "é" * 2000)] * 30
    found, _ = read(section(("agent-0", 30, None)),
                    {"agent-0": node("agent-0")},
                    lambda _n, _c: "\n".join(lines))
    [excerpt] = found["agent-0"]["excerpts"]
    assert excerpt["truncated"]
    assert all(len(line) == node_logs.MAX_LINE_CHARS + 1
               for line in excerpt["lines"])
    size = sum(len(line.encode()) + 1 for line in excerpt["lines"])
    assert 0 < size <= node_logs.MAX_EXCERPT_BYTES
    assert len(excerpt["lines"]) < 30


def test_past_the_total_cap_later_excerpts_say_they_were_left_out(
        monkeypatch):
    monkeypatch.setattr(node_logs, "MAX_TOTAL_BYTES", 3000)
    lines = "\n".join(journal_line(30, "x" * 300) for _ in range(6))
    found, _ = read(section(("agent-0", 30, 40), ("server-0", 30, 40)),
                    {"agent-0": node("agent-0"),
                     "server-0": node("server-0", "server")},
                    lambda _n, _c: lines)
    excerpts = found["agent-0"]["excerpts"] + found["server-0"]["excerpts"]
    kept = [e for e in excerpts if e["lines"]]
    assert len(kept) == 1  # 6 lines of ~360 bytes each: one fits
    assert all("left out" in e["error"] for e in excerpts[1:])
    assert sum(len(x.encode()) + 1 for e in kept for x in e["lines"]) <= 3000


def test_a_node_that_cannot_be_read_is_recorded_and_others_still_are():
    def handler(name, _command):
        if name == "agent-0":
            raise NodeUnreachable("agent-0", "ssh", "No route to host")
        if name == "agent-1":
            return 1, "", "No journal files were opened: Permission denied"
        return journal_line(30, "ok")
    nodes = {name: node(name) for name in ("agent-0", "agent-1", "agent-2")}
    nodes["virtual-0"] = node("virtual-0", access=None)
    sec = section(*((name, 30, 40) for name in nodes), ("gone", 30, None))
    found, _ = read(sec, nodes, handler)
    assert "No route to host" in found["agent-0"]["excerpts"][0]["error"]
    assert "Permission denied" in found["agent-1"]["excerpts"][1]["error"]
    assert found["agent-2"]["excerpts"][0]["lines"] == [
        journal_line(30, "ok")]
    assert found["virtual-0"] == {
        "excerpts": [], "error": "the inventory gives no transport for it"}
    assert found["gone"]["error"] == "not in the run's topology"


def test_a_transport_that_cannot_be_made_is_recorded_too():
    def broken(_node):
        raise OSError("ssh is not installed")
    found = node_logs.read_node_logs(
        section(("agent-0", 30, None)), {"agent-0": node("agent-0")},
        broken, lambda n: "logs", lambda text: text)
    assert found == {"agent-0": {"excerpts": [],
                                 "error": "ssh is not installed"}}


def test_a_slow_node_is_read_only_for_its_time(monkeypatch):
    monkeypatch.setattr(node_logs, "NODE_SECONDS", 1.5)

    def slow(_name, _command):
        time.sleep(0.7)
        return journal_line(30, "late")
    started = time.monotonic()
    found, transports = read(section(("agent-0", 30, 40), ("agent-0", 50,
                                                             60)),
                             {"agent-0": node("agent-0")}, slow)
    assert time.monotonic() - started < 2.5
    excerpts = found["agent-0"]["excerpts"]
    assert len(transports["agent-0"].calls) == 1  # 0.8 s left: not asked
    assert excerpts[0]["lines"] == [journal_line(30, "late")]
    assert all(e["error"].startswith("not read: the time")
               for e in excerpts[1:]) and len(excerpts) == 4


def test_lines_and_errors_are_redacted():
    secret = "K10abc::server:s3cr3t"
    redactor = Redactor([secret])

    def handler(name, _command):
        if name == "server-0":
            return 1, "", f"token {secret} refused"
        return "\n".join([journal_line(30, f"join with {secret}"),
                          journal_line(31, "db password=hunter22")])
    found, _ = read(section(("agent-0", 30, None), ("server-0", 30, None)),
                    {"agent-0": node("agent-0"),
                     "server-0": node("server-0", "server")},
                    handler, redactor.text)
    text = json.dumps(found)
    assert secret not in text and "hunter22" not in text
    assert REDACTED in found["agent-0"]["excerpts"][0]["lines"][0]
    assert REDACTED in found["server-0"]["excerpts"][0]["error"]


def export_entry(seconds: float, message: str, unit: str = "k3s") -> str:
    """One entry in the Journal Export Format, as journald stores a
    line of the unit."""
    micros = int(at(seconds).timestamp() * 1_000_000)
    return (f"__REALTIME_TIMESTAMP={micros}\n__MONOTONIC_TIMESTAMP="
            f"{micros}\n_BOOT_ID={'0' * 32}\n_HOSTNAME=server-0\n"
            f"_SYSTEMD_UNIT={unit}.service\nSYSLOG_IDENTIFIER={unit}\n"
            f"_PID=812\nMESSAGE={message}\n\n")


@needs_journal_tools
def test_the_default_command_reads_a_real_journal_around_the_transition(
        tmp_path):
    """A real journal file (written by systemd-journal-remote) read by
    the inventory's default `logs` command with the real journalctl
    (given the file with --file): the unit's lines of the window, in the
    form the excerpts place in time."""
    entries = [export_entry(s, f'level=info msg="k3s at {s}"')
               for s in (0, 9, 11, 25, 30, 31, 39, 41, 60)]
    entries.insert(4, export_entry(30.5, "another unit", unit="containerd"))
    (tmp_path / "export.txt").write_text("".join(entries))
    journal = tmp_path / "k3s.journal"
    subprocess.run([JOURNAL_REMOTE, "-o", str(journal),
                    str(tmp_path / "export.txt")], check=True,
                   capture_output=True, timeout=30)

    def node_side(_name, command):
        done = subprocess.run(["sh", "-c", f"{command} --file={journal}"],
                              capture_output=True, text=True, timeout=30,
                              check=False)
        return done.returncode, done.stdout, done.stderr
    found, transports = read(section(("server-0", 30, None)),
                             {"server-0": node("server-0", "server")},
                             node_side)
    [excerpt] = found["server-0"]["excerpts"]
    assert excerpt["error"] is None, excerpt
    assert [node_logs.line_time(line) for line in excerpt["lines"]] == [
        at(s) for s in (11, 25, 30, 31, 39)]  # [30 - 20, 30 + 10]
    assert excerpt["lines"][0].endswith(
        ' server-0 k3s[812]: level=info msg="k3s at 11"')
    assert not any("another unit" in line for line in excerpt["lines"])
    assert "-u k3s" in transports["server-0"].calls[0].text


# -- the lab's node logs ----------------------------------------------------
def lab_state(tmp_path: Path) -> LabState:
    state = LabState(tmp_path / "state")
    state.save(default_spec(), phase="up")
    logs = state.node_dir("server-etcd-0") / "logs"
    logs.mkdir(parents=True)
    stamp = "%Y-%m-%dT%H:%M:%S"
    (logs / "k3s.log").write_text("\n".join([
        f"--- {at(0).strftime(stamp)}Z starting k3s",
        f"{at(5).strftime(stamp)}.100Z INFO k3s.server-etcd-0 too early",
        f"{at(29).strftime(stamp)}.250Z ERROR k3s.server-etcd-0 lost etcd",
        "Traceback (most recent call last): unstamped, goes with the above",
        f"{at(31).strftime(stamp)}.000Z INFO k3s.server-etcd-0 retrying",
        f"{at(90).strftime(stamp)}.000Z INFO k3s.server-etcd-0 too late",
    ]) + "\n")
    (logs / "etcd.log").write_text("\n".join([
        json.dumps({"level": "warn", "ts": at(30).strftime(stamp) + ".5Z",
                    "msg": "lost TCP streaming connection"}),
        "WARNING: " + at(32).astimezone().strftime("%Y/%m/%d %H:%M:%S")
        + " [core] grpc: reconnecting",
    ]) + "\n")
    return state


def test_the_lab_node_log_window_merges_k3s_and_etcd_in_time_order(
        tmp_path):
    state = lab_state(tmp_path)
    lines = nodelogs.window(state.node_dir("server-etcd-0") / "logs",
                            "server-etcd-0", at(20), at(40))
    assert [line.split(" ", 3)[2] for line in lines] == [
        "k3s:", "k3s:", "etcd:", "k3s:", "etcd:"]
    assert "lost etcd" in lines[0] and "Traceback" in lines[1]
    assert "lost TCP streaming" in lines[2] and "retrying" in lines[3]
    assert "grpc: reconnecting" in lines[4]
    assert lines[0].startswith(at(29.25).isoformat() + " server-etcd-0 k3s:")
    assert not any("too early" in line or "too late" in line
                   for line in lines)


def test_the_lab_inventory_logs_command_prints_the_window(tmp_path):
    """The very command the lab inventory gives (`python -m
    chaosk3s.lab.nodectl NODE logs`), run as a node would run it."""
    state = lab_state(tmp_path)
    template = lab_commands(state)["logs"].replace("{node}",
                                                   "server-etcd-0")
    done = subprocess.run(
        ["sh", "-c", node_logs.command(template, at(20), at(40))],
        capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 5 and "lost etcd" in lines[0]
    assert node_logs.line_time(lines[0]) == at(29.25)
    bad = subprocess.run(["sh", "-c", template.replace("{since}", "x")],
                         capture_output=True, text=True, timeout=30,
                         check=False)
    assert bad.returncode == 1 and "@SECONDS" in bad.stderr
    unknown = subprocess.run(
        ["sh", "-c", node_logs.command(lab_commands(state)["logs"].replace(
            "{node}", "nobody"), at(20), at(40))],
        capture_output=True, text=True, timeout=30, check=False)
    assert unknown.returncode == 1 and "nobody" in unknown.stderr


def test_the_lab_nodes_write_the_stamp_the_reader_places_in_time():
    record = logging.LogRecord("k3s.agent-0", logging.INFO, __file__, 1,
                               "Remotedialer proxy error", None, None)
    line = log_format().format(record)
    moment = nodelogs.line_time(line)
    assert moment is not None
    assert abs(moment.timestamp() - record.created) < 0.002
    assert line.endswith("INFO k3s.agent-0 Remotedialer proxy error")


# -- the report -------------------------------------------------------------
def page(tmp_path: Path, logs: object) -> str:
    return events_page(tmp_path, logs, "node_logs")


def test_the_report_shows_each_excerpt_escaped_and_redacted(tmp_path):
    start = datetime(2026, 11, 25, 21, 39, 50, tzinfo=UTC)
    html = page(tmp_path, {
        "agent-0": {"error": None, "excerpts": [
            {"transition": "NotReady",
             "at": (start + timedelta(seconds=20)).isoformat(),
             "lines": ["<script>alert(1)</script> lost the server",
                       "auth: Bearer abc.def.ghi-jkl"],
             "truncated": True, "error": None},
            {"transition": "Ready",
             "at": (start + timedelta(seconds=40)).isoformat(),
             "lines": [], "truncated": False,
             "error": "CommandFailed: No route to host"}]},
        "agent-1": {"error": "the inventory gives no transport for it",
                    "excerpts": []}})
    block = html.split('<div id="node-logs">', 1)[1]
    assert "<script>alert(1)" not in block
    assert "&lt;script&gt;alert(1)&lt;/script&gt; lost the server" in block
    assert "abc.def.ghi-jkl" not in block
    assert "+20 s (21:40:10.0 UTC)" in block
    assert "2 lines, cut to those nearest the transition" in block
    assert "No route to host" in block
    assert "Not read: the inventory gives no transport for it" in block


def test_none_and_absent_read_differently(tmp_path):
    assert "logs could not be read when the run ended" in page(tmp_path,
                                                               None)
    assert 'id="node-logs"' not in page(tmp_path, "absent")
    assert 'id="node-logs"' not in page(tmp_path, {})


@pytest.mark.parametrize("garbage", [[1, 2], "text", {"a": "b"},
                                     {"a": {"excerpts": "x"}},
                                     {"a": {"excerpts": [None, 3]}}])
def test_a_malformed_section_still_renders(tmp_path, garbage):
    assert "</html>" in page(tmp_path, garbage)


@pytest.mark.parametrize("where,commands", [
    ("commands.agents.logs", {"commands": {"agents": {
        "logs": "journalctl -u k3s-agent"}}}),
    ("roles.etcd.commands.logs", {"roles": {"etcd": {"commands": {
        "logs": "tail -n 100 /var/log/k3s.log --since {since}"}}}}),
])
def test_a_logs_command_without_its_window_is_refused(where, commands):
    with pytest.raises(SpecError) as refused:
        parse_inventory({"cluster": "prod", "defaults": {"transport": {
            "type": "ssh", "host": "10.0.0.1"}},
            "nodes": [{"name": "agent-0"}], **commands}, "inv.yaml")
    assert f"inventory inv.yaml: {where} must contain {{since}} and " \
        f"{{until}}" in str(refused.value)
