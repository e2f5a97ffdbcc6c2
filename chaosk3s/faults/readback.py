"""What is active on a node, from the output of ``readback_script``.

Parsed from iptables itself (plus the timer files), not from any record
the runner kept, so it is the truth even after the runner died: which
chaosk3s chains exist, which run owns each, which peers each cuts, in
which direction and mode, and when its node-local timer fires.
"""

import ipaddress
import shlex
from dataclasses import asdict, dataclass, replace

from chaosk3s.faults.netem import BAND
from chaosk3s.faults.partition import (
    CHAIN_PREFIX,
    COMMENT_PREFIX,
    START_PREFIX,
)

UNLIMITED_SHOWN = "100Gbit"  # how tc shows netem.UNLIMITED


@dataclass(frozen=True)
class ActiveCut:
    peer: str | None  # the peer's node name, from the rule's comment
    peer_address: str
    direction: str  # both, to, from
    mode: str  # drop, reject
    ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class Timer:
    kind: str  # pid or systemd
    ident: str  # the pid or the systemd unit
    expires_at: int  # epoch seconds on the node's clock
    alive: bool
    fault: str | None = None  # the fault id it ends, where recorded


@dataclass(frozen=True)
class ActiveLink:
    """One degraded link as the node's tc shows it: what leaves device
    for peer_address passes the fault's class (``rate``: its limit as tc
    prints it, "" when unlimited or gone) and netem (``netem``: its
    options as tc prints them, "" when none or gone); ``steered``: a u32
    filter of the fault's root qdisc matches the address and leads into
    that class."""

    peer: str | None
    peer_address: str
    device: str
    handle: str
    netem: str
    steered: bool
    rate: str = ""


@dataclass(frozen=True)
class ActiveFault:
    """One chaosk3s chain on one node (in either address family), or a
    node-local start timer of a stopped K3s (kind ``stop``: no rules)."""

    node: str
    chain: str
    run_id: str | None
    hooks: tuple[str, ...]  # built-in chains that jump to it
    cuts: tuple[ActiveCut, ...]
    management: tuple[str, ...]  # the ACCEPT rules keeping the path open
    timer: Timer | None
    rules: tuple[str, ...]  # every line, as iptables -S (or tc) prints it
    kind: str = "partition"  # "stop": a pending node-side start;
    # "degradation": tc netem on the node's links (see links)
    links: tuple[ActiveLink, ...] = ()
    flapper: Timer | None = None  # switches it off and on (faults.flap)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Chain:
    hooks: list
    rules: list
    run_id: str | None = None


def parse_readback(node: str, text: str) -> list[ActiveFault]:
    """The active faults on node, one per CHAOSK3S chain (sorted), one
    per degradation record, then one per start timer."""
    section, chains, timers, tc = "", {}, {}, _Tc()
    for line in text.splitlines():
        if line.startswith("#"):
            section = line[1:].split()[0] if line[1:] else ""
            continue
        if section in ("rules", "rules6") and line.strip():
            _rule_line(line, chains)
        elif section == "tc" and line.strip():
            tc.add(line)
        elif section == "timers" and line.strip():
            _timer_line(line.split(), chains, timers)
    degraded = tc.faults(node, timers)
    found = [_fault(node, name, chain, timers.get(name))
             for name, chain in sorted(chains.items())
             if name.startswith(CHAIN_PREFIX) and (
                 chain.rules or chain.hooks or name not in degraded)] + [
        degraded[name] for name in sorted(degraded)]
    return [replace(f, flapper=timers.get(f.chain + "~flap"))
            for f in found] + [
        ActiveFault(node, name, timer.fault, (), (), (), timer, (), "stop")
        for name, timer in sorted(timers.items())
        if name.startswith(START_PREFIX)]


def _timer_line(parts: list[str], chains: dict[str, "_Chain"],
                timers: dict[str, Timer]) -> None:
    """A timer, or (7th word "flap") a flapper, kept as NAME~flap."""
    if len(parts) < 5 or not parts[3].isdigit():
        return
    fault = parts[5] if len(parts) > 5 and parts[5] != "-" else None
    if parts[0].startswith(CHAIN_PREFIX):
        chains.setdefault(parts[0], _Chain([], []))
    name = parts[0] + ("~flap" if parts[6:7] == ["flap"] else "")
    timers[name] = Timer(parts[1], parts[2], int(parts[3]),
                         parts[4] == "yes", fault)


def _rule_line(line: str, chains: dict[str, _Chain]) -> None:
    words = shlex.split(line)
    if words[:1] == ["-N"] and len(words) == 2:
        chains.setdefault(words[1], _Chain([], []))
        return
    if words[:1] != ["-A"] or len(words) < 2:
        return
    owner, opts = words[1], _options(words[2:])
    target = opts.get("-j", "")
    if owner.startswith(CHAIN_PREFIX):
        chains.setdefault(owner, _Chain([], [])).rules.append(line)
    elif target.startswith(CHAIN_PREFIX):
        chain = chains.setdefault(target, _Chain([], []))
        chain.hooks.append(owner)
        chain.run_id = _run_id(opts.get("--comment")) or chain.run_id


def _options(words: list[str]) -> dict[str, str]:
    """iptables options as a mapping (flags without a value map to '')."""
    opts, key = {}, None
    for word in words:
        if word.startswith("-") and not word.lstrip("-").isdigit():
            key = word
            opts[key] = ""
        elif key is not None:
            opts[key] = f"{opts[key]} {word}".strip()
    return opts


def _run_id(comment: str | None) -> str | None:
    if not comment or not comment.startswith(COMMENT_PREFIX):
        return None
    return comment[len(COMMENT_PREFIX):].split(" ", 1)[0] or None


def _fault(node: str, name: str, chain: _Chain,
           timer: Timer | None) -> ActiveFault:
    groups: dict[tuple, set[str]] = {}
    management, run_id = [], chain.run_id
    for line in chain.rules:
        opts = _options(shlex.split(line)[2:])
        comment = opts.get("--comment", "")
        run_id = run_id or _run_id(comment)
        if opts.get("-j") == "ACCEPT":
            management.append(line)
            continue
        if opts.get("-j") == "RETURN":  # lets a reject's answers through
            continue
        key, end = _cut_key(opts, comment)
        groups.setdefault(key, set()).add(end)
    cuts = [ActiveCut(peer, address, _direction(ends), mode, ports)
            for (peer, address, mode, ports, _tracked), ends
            in sorted(groups.items(), key=lambda item: str(item[0]))]
    hooks = tuple(sorted(set(chain.hooks)))
    rules = tuple(chain.rules)
    return ActiveFault(node, name, run_id, hooks, tuple(cuts),
                       tuple(management), timer, rules)


def _cut_key(opts: dict[str, str], comment: str) -> tuple[tuple, str]:
    """(peer, address, mode, ports, tracked) and the packet end (s/d)."""
    end = "s" if "-s" in opts else "d"
    address = opts.get("-s") or opts.get("-d") or "?"
    peer = None
    for word in comment.split():
        if word.startswith("peer="):
            peer = word[len("peer="):]
    ports = opts.get("--dport") or opts.get("--dports") or ""
    mode = "drop" if opts.get("-j") == "DROP" else "reject"
    key = (peer, address.removesuffix("/32").removesuffix("/128"), mode,
           tuple(int(p) for p in ports.split(",") if p.isdigit()),
           opts.get("--ctdir") == "ORIGINAL")
    return key, end


def _direction(ends: set[str]) -> str:
    if ends == {"s", "d"}:
        return "both"
    return "from" if "s" in ends else "to"


def summary(faults: list[ActiveFault]) -> list[str]:
    """One line per cut, for logs and the CLI."""
    lines = []
    for fault in faults:
        for link in fault.links:
            what = " ".join(x for x in (link.netem, link.rate and
                                        f"rate {link.rate}") if x)
            lines.append(f"{fault.node}: {fault.run_id or fault.chain} "
                         f"degrade to {link.peer or '?'} "
                         f"({link.peer_address}) on {link.device}: "
                         f"{what or 'no netem or rate'}"
                         f"{'' if link.steered else ' (no filter)'}")
        for cut in fault.cuts:
            ports = f" tcp/{','.join(map(str, cut.ports))}" if cut.ports \
                else ""
            lines.append(f"{fault.node}: {fault.run_id or fault.chain} "
                         f"{cut.mode} {cut.direction} {cut.peer or '?'} "
                         f"({cut.peer_address}){ports}")
        if not fault.cuts and not fault.links:
            what = ("k3s stopped, starts by itself at "
                    f"{fault.timer.expires_at}" if fault.kind == "stop"
                    else f"no cuts; hooks {', '.join(fault.hooks) or '-'}")
            lines.append(f"{fault.node}: {fault.run_id or fault.chain} "
                         f"({what})")
    return lines


class _Tc:
    """The read-back's tc section: records (R name device handle peer
    address fault), and per device tc's own qdisc and filter lines."""

    def __init__(self) -> None:
        self.records: dict[str, list[list[str]]] = {}
        self.shown: dict[tuple[str, str], list[str]] = {}

    def add(self, line: str) -> None:
        kind, _, rest = line.partition(" ")
        if kind == "R" and len(rest.split()) >= 5:
            words = rest.split()
            self.records.setdefault(words[0], []).append(words[1:])
        elif kind in ("qdisc", "class", "filter"):
            device, _, shown = rest.partition(" ")
            self.shown.setdefault((kind, device), []).append(shown)

    def faults(self, node: str,
               timers: dict[str, Timer]) -> dict[str, ActiveFault]:
        out = {}
        for name, records in self.records.items():
            links, shown = [], []
            run_id = next((r[4] for r in records if len(r) > 4), None)
            for device, major in dict.fromkeys((r[0], r[1])
                                               for r in records):
                shown += self._ours(device, major)
            for device, major, peer, address, *_ in records:
                if peer == "-":
                    continue
                links.append(ActiveLink(
                    peer, address, device, major,
                    self._netem(device, major),
                    self._steered(device, major, address),
                    self._rate(device, major)))
            out[name] = ActiveFault(node, name, run_id, (), (), (),
                                    timers.get(name), tuple(shown),
                                    "degradation", tuple(links))
        return out

    def _ours(self, device: str, major: str) -> list[str]:
        return [f"{device}: {line.strip()}"
                for line in self.shown.get(("qdisc", device), [])
                if f"{major}: root" in line or f"parent {major}:" in line]

    def _netem(self, device: str, major: str) -> str:
        for line in self.shown.get(("qdisc", device), []):
            if line.startswith("qdisc netem ") and \
                    f"parent {major}:{BAND} " in line + " ":
                return line.split(f"parent {major}:{BAND}", 1)[1].strip()
        return ""

    def _rate(self, device: str, major: str) -> str:
        for line in self.shown.get(("class", device), []):
            words = line.split()
            if words[:3] == ["class", "htb", f"{major}:{BAND}"] and \
                    "rate" in words:
                rate = words[words.index("rate") + 1]
                return "" if rate == UNLIMITED_SHOWN else rate
        return ""

    def _steered(self, device: str, major: str, address: str) -> bool:
        """A filter of major leading into netem matches address (u32
        shows the address as hex words at their header offsets)."""
        want = _u32_words(address)
        flow, matches = None, set()
        for line in [*self.shown.get(("filter", device), []), "filter"]:
            if line.startswith("filter"):
                if flow == f"{major}:{BAND}" and want <= matches:
                    return True
                # tc marks a filter it has not offloaded "*flowid"
                words = [w.lstrip("*") for w in line.split()]
                flow = words[words.index("flowid") + 1] \
                    if "flowid" in words else None
                matches = set()
            elif line.strip().startswith("match "):
                matches.add(" ".join(line.split()[1:4]))
        return False


def _u32_words(address: str) -> set[str]:
    """How u32 prints a full-length match on address as destination."""
    packed = ipaddress.ip_address(address).packed
    base = 16 if len(packed) == 4 else 24
    return {f"{packed[i:i + 4].hex()}/ffffffff at {base + i}"
            for i in range(0, len(packed), 4)}
