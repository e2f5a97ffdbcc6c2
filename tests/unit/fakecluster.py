"""A cluster of fake nodes behind the recording transport, for root-free
tests of the fault lifecycle.

Each node plays what a systemd node with iptables answers to the scripts
chaosk3s sends: partition scripts add or remove chains (the rules are the
ones the real script carries in its here-document), the read-back prints
them with the node's start timers, node-side starts are armed and
cancelled, the K3s unit starts, stops and restarts, etcd answers /health
while K3s runs, and a reboot changes the boot id. A node can be made
unreachable, or made to fail some scripts a number of times.
"""

import re
import threading
import time
from dataclasses import dataclass, field

from chaosk3s.transports.base import NodeUnreachable
from chaosk3s.transports.recording import Call, RecordingTransport

COMMANDS = {
    "restart": "systemctl restart k3s", "stop": "systemctl stop k3s",
    "start": "systemctl start k3s", "reboot": "systemctl reboot",
    "status": "systemctl show -p MainPID,ActiveState k3s",
    "boot_id": "cat /proc/sys/kernel/random/boot_id",
    "serving": "curl -fks https://127.0.0.1:6443/ping",
    "etcd_health": "curl -s https://127.0.0.1:2379/health",
}


@dataclass
class FakeNode:
    name: str
    pid: int = 100
    active: bool = True
    boot: int = 1
    reachable: bool = True
    chains: dict[str, list[str]] = field(default_factory=dict)
    timers: dict[str, str] = field(default_factory=dict)  # name -> fault
    fail: dict[str, int] = field(default_factory=dict)  # kind -> times
    who: str = ""  # SSH_CONNECTION as this node sees the runner
    on_boot: list = field(default_factory=list)
    armed: dict[str, float] = field(default_factory=dict)  # last ttl
    started: dict[str, int] = field(default_factory=dict)  # timer: epoch


class FakeCluster:
    def __init__(self, names: list[str], commands: dict | None = None):
        self.nodes = {n: FakeNode(n) for n in names}
        self.commands = commands or COMMANDS
        self.who = ""  # what SSH_CONNECTION says on the nodes
        self.log: list[Call] = []
        self.lock = threading.RLock()
        self.gate: dict[str, threading.Event] = {}  # kind -> released
        self.seen_before: dict[str, object] = {}  # kind -> hook result
        self.hooks: dict[str, object] = {}  # kind -> callable(node)

    def sent(self, kind: str) -> list[str]:
        """The nodes that were sent a script of kind, in order."""
        return [c.node for c in self.log
                if _kind(c.command, self.commands) == kind]

    def kinds(self) -> list[tuple[str, str]]:
        return [(c.node, _kind(c.command, self.commands)) for c in self.log]

    def transport(self, name: str) -> RecordingTransport:
        return RecordingTransport(name, self.answer, self.log, kind="ssh",
                                  management_port=22)

    # -- the node's side ---------------------------------------------------
    def answer(self, name: str, command):
        node = self.nodes[name]
        if not node.reachable:
            raise NodeUnreachable(name, f"{name} over ssh",
                                  "ssh: connect to host: No route to host")
        kind = _kind(command, self.commands)
        if kind in self.hooks:
            self.seen_before.setdefault(kind, self.hooks[kind](name))
        if kind in self.gate:
            self.gate[kind].wait(30)
        with self.lock:
            if node.fail.get(kind, 0) > 0:
                node.fail[kind] -= 1
                return 1, "", f"{kind} failed on {name} (injected)"
            return getattr(self, f"_{kind}")(node, command)

    def _who(self, node, command):
        return node.who or self.who

    def _apply(self, node, command):
        chain = re.search(r"echo applied (CHAOSK3S-\S+)", command).group(1)
        rules = []
        for line in command.splitlines():
            if line.startswith("-A "):
                rules.append(line)
            elif line.startswith("-I "):
                hook = line.split()[1]
                rules.append(f"-A {hook} " + line.split(" 1 ", 1)[1])
        node.chains[chain] = rules
        return f"applied {chain}\n"

    def _heal(self, node, command):
        pattern = re.findall(r"chaosk3s_heal '?([^' ]+)'? cancel", command)
        regex = re.compile(pattern[-1])
        removed = [c for c in node.chains if regex.fullmatch(c)]
        for chain in removed:
            del node.chains[chain]
        for timer in [t for t in node.timers if regex.fullmatch(t)]:
            del node.timers[timer]
        return "".join(f"removed {c} (iptables)\n" for c in removed)

    def _readback(self, node, command):
        lines = ["#rules"]
        for chain, rules in sorted(node.chains.items()):
            lines += [f"-N {chain}", *rules]
        lines.append("#timers")
        lines += [f"{name} pid 4242 1999999999 yes {fault}"
                  for name, fault in sorted(node.timers.items())]
        return "\n".join([*lines, "#now 1999999000", ""])

    def _arm(self, node, command):
        name, ttl = re.search(r"echo armed (\S+) in (\S+)s", command).groups()
        fault = re.search(r'\$expires (\S+)" >', command).group(1)
        node.timers[name] = fault
        node.armed[name] = float(ttl)
        until = int(time.time()) + int(float(ttl)) + 1  # as shell.timer
        return f"armed {name} in {ttl}s until {until}\n"

    def fire_start_timers(self, name: str) -> None:
        """What a node's start timers do at their deadline: start K3s,
        log when that returned, and go."""
        node = self.nodes[name]
        for timer in list(node.timers):
            if timer.startswith("CHAOSK3S_START-"):
                self._start(node, "")
                node.started[timer] = int(time.time())
                del node.timers[timer]

    def _started(self, node, command):
        name = re.search(r'"\$STATE/(\S+)\.log"', command).group(1)
        return (f"chaosk3s-started 0 {node.started[name]}\n"
                if name in node.started else "")

    def _cancel(self, node, command):
        pattern = re.findall(r"chaosk3s_cancel '?([^' \n]+)'?\n", command)
        regex = re.compile(pattern[-1])
        for timer in [t for t in node.timers if regex.fullmatch(t)]:
            del node.timers[timer]
        return "cancelled\n"

    def _status(self, node, command):
        return (f"MainPID={node.pid if node.active else 0}\n"
                f"ActiveState={'active' if node.active else 'inactive'}\n")

    def _start(self, node, command):
        if not node.active:
            node.pid, node.active = node.pid + 1, True
        return ""

    def _stop(self, node, command):
        node.active = False
        return ""

    def _restart(self, node, command):
        node.pid, node.active = node.pid + 1, True
        return ""

    def _reboot(self, node, command):
        node.boot += 1
        node.pid, node.active = node.pid + 1, True
        for hook in node.on_boot:
            hook(node.name)
        return "issued\n"

    def _boot(self, node, command):
        return f"boot-{node.boot}\n"

    def _serving(self, node, command):
        return "pong" if node.active else (7, "", "connection refused")

    def _health(self, node, command):
        return '{"health":"true"}' if node.active else (
            7, "", "connection refused")

    def _rm(self, node, command):
        return ""


def _kind(command, commands: dict) -> str:
    text = command if isinstance(command, str) else " ".join(command)
    for mark, kind in (("SSH_CONNECTION", "who"),
                       ("echo applied", "apply"), ("echo armed", "arm"),
                       ("grep -- chaosk3s-started", "started"),
                       ("echo cancelled", "cancel"),
                       ("echo '#rules'", "readback"),
                       ("chaosk3s_heal ", "heal"),
                       ("setsid nohup /bin/sh -c", "reboot"),
                       ("boot=$(", "boot"), ("rm -f", "rm")):
        if mark in text:
            return kind
    for key, kind in (("status", "status"), ("boot_id", "boot"),
                      ("serving", "serving"), ("etcd_health", "health"),
                      ("start", "start"), ("stop", "stop"),
                      ("restart", "restart")):
        if text == commands[key]:
            return kind
    raise AssertionError(f"the fake node does not know {text[:120]!r}")
