"""Degraded links as data turned into tc commands, beside the partitions'
iptables chains and under the same name, timer and heal.

A fault's degradations on one node live under a root ``htb`` qdisc that
chaosk3s adds to each interface the chosen peers are routed through,
with no default class: what no filter classifies is sent straight on,
unshaped (tc-htb(8): unclassified traffic goes to the default class, 0
meaning none, "direct"). u32 filters that match the chosen peers'
addresses (and ports) send their packets to class 4, whose rate is the
fault's bandwidth limit (else unlimited) and whose leaf qdisc is netem
when the fault delays, loses, duplicates, corrupts or reorders. Traffic
to anyone else, the transport's own path included, never meets either.
Where the runner's address and port are known, a first filter sends the
management path to an unlimited class 1 even if the runner is a peer.

The qdiscs are named by the fault: ``$STATE/<chain>.tc`` (the chain name
a partition of the same fault would have) lists ``device handle peer
address fault`` per filter; ``chaosk3s_heal`` and the node timer remove
the root qdisc (classes, netem and filters with it) on each device where
it still carries that handle, so a heal, an expiry and `chaosk3s
cleanup` treat degradations and partitions alike. ``tc qdisc add ...
root`` fails where an explicit root qdisc already exists: a second
degradation of the same interface, or an operator's own shaping, is
refused, never replaced.

tc acts on packets leaving an interface (man tc-netem(8)), so a
degradation is one-way: node -> peer.
"""

import hashlib
import re
import shlex

from chaosk3s.errors import SpecError
from chaosk3s.model import Degradation, FaultPlan, Netem

BAND = 4  # htb class of the degraded traffic (its leaf: netem)
NORMAL_BAND = 1  # unlimited htb class of the management path
UNLIMITED = "100gbit"  # htb needs a rate: one no link reaches
_PRIO = {4: 1, 6: 2}  # filter priority of the management path per family
MAX_DELAY_MS = 60_000.0  # a minute: more is a cut, use partition_roles
_RATE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]+)\s*$")
# tc's rate units (man tc(8), "RATES"): bits and bytes per second, SI
RATE_UNITS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9,
              "bps": 8, "kbps": 8 * 10**3, "mbps": 8 * 10**6,
              "gbps": 8 * 10**9}


def parse_rate_bits(value: object) -> int:
    """A bandwidth as bits per second: "" or 0 (no limit), or a number
    with one of tc's units ("1mbit", "500kbit", "2mbps" = bytes)."""
    if value in ("", None, 0):
        return 0
    match = _RATE.match(str(value).lower())
    if not match or match.group(2) not in RATE_UNITS:
        raise ValueError(f"{value!r} is not a rate: a number and one of "
                         f"{', '.join(RATE_UNITS)} (e.g. 1mbit)")
    bits = round(float(match.group(1)) * RATE_UNITS[match.group(2)])
    if bits < 8:
        raise ValueError(f"{value!r} is no bandwidth: use at least 8bit, "
                         f"or partition_roles to cut the link")
    return bits


def validate_netem(netem: Netem, where: str) -> None:
    """SpecError naming the first impossible or empty impairment."""
    for name in ("loss", "duplicate", "corrupt", "reorder", "correlation"):
        value = getattr(netem, name)
        if not 0 <= value <= 100:
            raise SpecError(f"{where}: {name} {value!r}% must be from 0 "
                            f"to 100")
    if not 0 <= netem.delay_ms <= MAX_DELAY_MS:
        raise SpecError(f"{where}: delay {netem.delay_ms!r}ms must be "
                        f"from 0 to {MAX_DELAY_MS:.0f}ms")
    if not 0 <= netem.jitter_ms <= MAX_DELAY_MS:
        raise SpecError(f"{where}: jitter {netem.jitter_ms!r}ms must be "
                        f"from 0 to {MAX_DELAY_MS:.0f}ms")
    if (netem.jitter_ms or netem.reorder) and not netem.delay_ms:
        raise SpecError(f"{where}: jitter and reorder act on delayed "
                        f"packets (tc-netem): give a delay as well")
    if netem.rate_bits < 0 or netem.rate_bits == 0 and not any((
            netem.delay_ms, netem.loss, netem.duplicate, netem.corrupt)):
        raise SpecError(f"{where}: no impairment given (delay, loss, "
                        f"duplicate, corrupt or rate): nothing to do")


def netem_words(netem: Netem) -> list[str]:
    """netem's options on tc's command line (the rate is htb's)."""
    words = []
    if netem.delay_ms:
        words += ["delay", _us(netem.delay_ms)]
        if netem.jitter_ms:
            words += [_us(netem.jitter_ms), _pct(netem.correlation)]
    for name in ("loss", "duplicate", "corrupt", "reorder"):
        if getattr(netem, name):
            words += [name, _pct(getattr(netem, name))]
    return words


def _us(ms: float) -> str:
    return f"{round(ms * 1000)}us"


def _pct(value: float) -> str:
    return f"{value:g}%"


def handle(run_id: str) -> str:
    """The root qdisc's major handle for a fault, in hex as tc prints it
    (0x1000-0x7fff: below the kernel's automatic 8000+ handles)."""
    digest = int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16)
    return f"{0x1000 + digest % 0x7000:x}"


def node_netem(plan: FaultPlan, node: str) -> Netem | None:
    """The one netem setting of node's degradations in plan (None if it
    has none); SpecError if they differ (one netem per interface)."""
    settings = {d.netem for d in plan.degradations if d.node == node}
    if len(settings) > 1:
        raise SpecError(f"node {node}: a plan's degradations on one node "
                        f"must share one netem setting")
    return next(iter(settings), None)


def filter_lines(major: str, item: Degradation, version: int) -> list[str]:
    """The u32 filter match(es) steering item's packets into netem, as
    arguments after ``tc filter add dev DEV`` (DEV filled in on the
    node). Ports: TCP source or destination port (no IP options or
    IPv6 extension headers assumed, as u32's ip/ip6 port matches do)."""
    proto, key = ("ip", "ip") if version == 4 else ("ipv6", "ip6")
    width = 32 if version == 4 else 128
    # one protocol per filter priority (the kernel refuses a second):
    # management 1 (IPv4) and 2 (IPv6) first, then peers 3 and 4
    base = (f"parent {major}: protocol {proto} prio {_PRIO[version] + 2} "
            f"u32 "
            f"match {key} dst {item.peer_address}/{width}")
    target = f"flowid {major}:{BAND}"
    if not item.ports:
        return [f"{base} {target}"]
    return [f"{base} match {key} protocol 6 0xff match {key} {end} "
            f"{port} 0xffff {target}"
            for port in sorted(set(item.ports)) for end in ("dport",
                                                            "sport")]


def management_lines(major: str, port: int | None, address: str | None,
                     version: int) -> list[str]:
    """Filters (checked first) keeping the transport's own path out of
    netem: replies from the node's management port to the runner."""
    if port is None or address and (":" in address) != (version == 6):
        return []
    proto, key = ("ip", "ip") if version == 4 else ("ipv6", "ip6")
    width = 32 if version == 4 else 128
    to = f" match {key} dst {address}/{width}" if address else ""
    return [f"parent {major}: protocol {proto} prio {_PRIO[version]} "
            f"u32{to} "
            f"match {key} protocol 6 0xff match {key} sport {port} 0xffff "
            f"flowid {major}:{NORMAL_BAND}"]


def quoted(words: list[str]) -> str:
    return " ".join(shlex.quote(w) for w in words)


def root_commands(major: str, netem: Netem, dev: str, port: int | None,
                  address: str | None) -> tuple[list[str], str | None]:
    """(the tc commands that set up an interface, the netem one or None):
    the root htb without a default class, the degraded class at the
    fault's rate, the management class and filters."""
    rate = f"{netem.rate_bits}bit" if netem.rate_bits else UNLIMITED
    setup = [f"tc qdisc add dev {dev} root handle {major}: htb",
             f"tc class add dev {dev} parent {major}: classid "
             f"{major}:{BAND} htb rate {rate} ceil {rate}"]
    keep = [line for version in (4, 6)
            for line in management_lines(major, port, address, version)]
    if keep:
        setup.append(f"tc class add dev {dev} parent {major}: classid "
                     f"{major}:{NORMAL_BAND} htb rate {UNLIMITED}")
        setup += [f"tc filter add dev {dev} {line}" for line in keep]
    words = netem_words(netem)
    emulate = (f"tc qdisc add dev {dev} parent {major}:{BAND} netem "
               f"{quoted(words)}") if words else None
    return setup, emulate


def apply_lines(plan: FaultPlan, node: str, chain: str, port: int | None,
                address: str | None) -> list[str]:
    """Shell lines that degrade node's links of plan (after the prelude,
    HEAL_FUNCTIONS and the timer): per peer address, the interface its
    route leaves by gets the fault's root qdisc (recorded first, so a
    heal finds it), class, netem and management filters once, then the
    address's filters. Any failure heals the whole fault and exits 1."""
    netem = node_netem(plan, node)
    if netem is None:
        return []
    major, record = handle(plan.run_id), f'"$STATE"/{chain}.tc'
    fail = f"{{ chaosk3s_heal {chain} cancel; exit 1; }}"
    setup, emulate = root_commands(major, netem, '"$1"', port, address)
    lines = ["chaosk3s_tc_root() {",
             f'  chaosk3s_tc_ours "$1" {major} && return 0',
             f'  echo "$1 {major} - - {plan.run_id}" >> {record}',
             *(f"  {line} || return 1" for line in setup)]
    if emulate:
        lines += [f"  {emulate} || {{",
                  f'    echo "chaosk3s: tc cannot add netem on {node} (is '
                  f'the sch_netem kernel module available?)" >&2',
                  "    return 1", "  }"]
    lines.append("}")
    for item in plan.degradations:
        if item.node != node:
            continue
        version = 6 if ":" in item.peer_address else 4
        lines += [
            f"dev=$(ip route get {item.peer_address} 2>/dev/null | sed -n "
            "'s/.* dev \\([^ ]*\\).*/\\1/p' | head -n 1)",
            f'[ -n "$dev" ] || {{ echo "chaosk3s: no route to '
            f'{item.peer_address} ({item.peer}) on {node}" >&2; '
            f"chaosk3s_heal {chain} cancel; exit 1; }}",
            f'chaosk3s_tc_root "$dev" || {fail}',
            f'echo "$dev {major} {item.peer} {item.peer_address} '
            f'{plan.run_id}" >> {record}',
            *(f'tc filter add dev "$dev" {line} || {fail}'
              for line in filter_lines(major, item, version))]
    return lines


def shown_lines(plan: FaultPlan, node: str, port: int | None,
                address: str | None) -> list[str]:
    """What `chaosk3s plan` shows for node: the tc commands, with DEV
    standing for the interface each peer's route leaves by."""
    netem = node_netem(plan, node)
    if netem is None:
        return []
    major = handle(plan.run_id)
    setup, emulate = root_commands(major, netem, "DEV", port, address)
    lines = setup + ([emulate] if emulate else [])
    for item in plan.degradations:
        if item.node == node:
            version = 6 if ":" in item.peer_address else 4
            lines += [f"tc filter add dev DEV {line}  # {item.peer}"
                      for line in filter_lines(major, item, version)]
    return lines


def validate_degradations(plan: FaultPlan, check_name) -> None:
    """SpecError naming the first problem of plan's degradations."""
    for item in plan.degradations:
        where = f"degradation {item.node} -> {item.peer}"
        for name in (item.node, item.peer):
            check_name(name, where)
        if item.node == item.peer:
            raise SpecError(f"{where}: a node cannot be degraded towards "
                            f"itself")
        validate_netem(item.netem, where)
        for port in item.ports:
            if isinstance(port, bool) or not isinstance(port, int) or \
                    not 0 < port < 65536:
                raise SpecError(f"{where}: port {port!r} is not a TCP port")
    for node in {d.node for d in plan.degradations}:
        node_netem(plan, node)
