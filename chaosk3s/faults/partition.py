"""Partitions as data: a FaultPlan becomes one shell script per node.

Pure functions, no I/O: the scripts run later over any transport.

Rules live only in a chain chaosk3s owns, ``CHAOSK3S-<short run id>``,
jumped to first thing from the filter table's INPUT and OUTPUT by rules
tagged with the comment ``chaosk3s:<run id>``. A node's rules for a plan
land in one ``iptables-restore --noflush`` transaction (all or nothing);
no table or built-in chain is ever flushed.

Directions: ``both`` drops every packet to and from the peer. ``from``
and ``to`` are about who opens a connection: ``from`` refuses flows the
peer opens to the node, ``to`` flows the node opens to the peer (existing
ones included, via conntrack's ORIGINAL direction); replies of flows in
the other direction still pass. ``ports`` limits a cut to TCP flows whose
destination port is one of them. Modes: ``drop`` is a black hole (a
connect times out); ``reject`` answers TCP with a reset and everything
else with ICMP port-unreachable (a connect fails at once).

The management path stays open: an ACCEPT for the transport's port
to/from the runner's address comes first in the chain. Every apply
starts, *before* loading rules, a timer on the node that heals this run
after the plan's ttl, so the node heals even if the runner dies.
"""

import hashlib
import ipaddress
import re
import shlex
from dataclasses import dataclass

from chaosk3s.errors import SpecError
from chaosk3s.faults import netem, shell
from chaosk3s.faults.flap import flapper_lines, validate_flap
from chaosk3s.model import Cut, FaultPlan

CHAIN_PREFIX = "CHAOSK3S-"
START_PREFIX = "CHAOSK3S_START-"  # node-side start timers of stopped K3s
CHAIN_MAX = 28  # iptables chain names are at most 28 characters
COMMENT_PREFIX = "chaosk3s:"
DEFAULT_STATE_DIR = "/run/chaosk3s"
DIRECTIONS = ("both", "to", "from")
MODES = ("drop", "reject")
TIMERS = ("setsid", "auto")
MAX_TTL = 7 * 24 * 3600.0  # a forgotten fault must still expire
MULTIPORT_MAX = 15  # iptables' multiport takes at most 15 ports
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_SHORT_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")


@dataclass(frozen=True)
class Management:
    """The transport's own path, which no fault may cut: TCP ``port`` on
    the node, to and from ``address`` (the runner as the node sees it).
    Without an address, established flows on the port stay open."""

    port: int | None = None
    address: str | None = None


@dataclass(frozen=True)
class NodeSetup:
    """Where and how a node's scripts keep state.

    timer ``setsid``: a detached ``sleep`` (needed in namespaces, where a
    systemd timer would run outside the node); ``auto``: a transient
    systemd timer when systemd runs the node, else setsid.
    """

    node: str
    management: Management = Management()
    state_dir: str = DEFAULT_STATE_DIR
    timer: str = "setsid"

    def __post_init__(self) -> None:
        if not _NAME.match(self.node):  # it becomes part of a path
            raise SpecError(f"node name {self.node!r} is not valid")
        if self.timer not in TIMERS:
            raise SpecError(f"timer {self.timer!r}; use setsid or auto")

    @property
    def node_state(self) -> str:
        # lab nodes share one filesystem: the node name keeps them apart
        return f"{self.state_dir.rstrip('/')}/{self.node}"


def short_id(run_id: str) -> str:
    """The run id as it fits in a chain name (hashed when too long)."""
    check_run_id(run_id)
    room = CHAIN_MAX - len(CHAIN_PREFIX)
    if len(run_id) <= room and _SHORT_OK.match(run_id):
        return run_id
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    head = re.sub(r"[^A-Za-z0-9_-]", "-", run_id)[:room - 9].rstrip("-")
    return f"{head}-{digest}" if head else digest


def chain_name(run_id: str) -> str:
    return CHAIN_PREFIX + short_id(run_id)


def check_run_id(run_id: str) -> None:
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise SpecError(
            f"run id {run_id!r} must be 1-128 letters, digits or '_.:-', "
            f"starting with a letter or digit")


def validate_plan(plan: FaultPlan) -> None:
    """Raise SpecError naming the first problem; nothing has run yet."""
    check_run_id(plan.run_id)
    if not 0 < plan.ttl_seconds <= MAX_TTL:
        raise SpecError(f"ttl {plan.ttl_seconds!r}s must be more than 0 "
                        f"and at most {MAX_TTL:.0f}s (7 days)")
    if not plan.cuts and not plan.degradations:
        raise SpecError(f"plan {plan.run_id} has no cuts or degradations: "
                        f"nothing to do")
    for cut in plan.cuts:
        _validate_cut(cut)
    netem.validate_degradations(plan, _check_name)
    if plan.flap is not None:
        validate_flap(plan.flap, plan.ttl_seconds)
    for item in plan.degradations:
        if family(item.peer_address) is None:
            raise SpecError(f"degradation {item.node} -> {item.peer}: peer "
                            f"address {item.peer_address!r} is not an IPv4 "
                            f"or IPv6 address")


def _check_name(name: object, where: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(f"{where}: node name {name!r} is not valid")


def _validate_cut(cut: Cut) -> None:
    where = f"cut {cut.node} -> {cut.peer}"
    for name in (cut.node, cut.peer):
        _check_name(name, where)
    if cut.node == cut.peer:
        raise SpecError(f"{where}: a node cannot be cut from itself")
    if family(cut.peer_address) is None:
        raise SpecError(f"{where}: peer address {cut.peer_address!r} is "
                        f"not an IPv4 or IPv6 address")
    if cut.direction not in DIRECTIONS:
        raise SpecError(f"{where}: direction {cut.direction!r}; use one "
                        f"of {', '.join(DIRECTIONS)}")
    if cut.mode not in MODES:
        raise SpecError(f"{where}: mode {cut.mode!r}; use drop or reject")
    for port in cut.ports:
        if isinstance(port, bool) or not isinstance(port, int) or not (
                0 < port < 65536):
            raise SpecError(f"{where}: port {port!r} is not a TCP port")


def family(address: str | None) -> int | None:
    """4 or 6 for an IP address (no prefix), None for anything else."""
    try:
        return ipaddress.ip_address(address).version
    except (ValueError, TypeError):
        return None


def families(plan: FaultPlan, node: str) -> list[int]:
    """The address families node has cuts in (4, 6 or both)."""
    return sorted({family(c.peer_address) for c in plan.cuts
                   if c.node == node})


def node_rules(plan: FaultPlan, node: str,
               management: Management = Management(),
               version: int = 4) -> list[str]:
    """The iptables-restore (version 6: ip6tables-restore) input that
    applies plan's cuts of that address family on node."""
    validate_plan(plan)
    if management.address and family(management.address) is None:
        raise SpecError(f"node {node}: the runner's address "
                        f"{management.address!r} is not an IP address")
    chain = chain_name(plan.run_id)
    lines = ["*filter", f":{chain} - [0:0]"]
    lines += _management_rules(chain, _comment(plan.run_id, "management"),
                               management, version)
    for cut in plan.cuts:
        if cut.node == node and family(cut.peer_address) == version:
            lines += _cut_rules(chain, _comment(plan.run_id,
                                                f"peer={cut.peer}"), cut)
    tag = _comment(plan.run_id)
    lines += [f"-I {hook} 1 {tag} -j {chain}" for hook in ("INPUT",
                                                           "OUTPUT")]
    return [*lines, "COMMIT"]


def _comment(run_id: str, detail: str = "") -> str:
    text = f"{COMMENT_PREFIX}{run_id} {detail}".strip()
    return f'-m comment --comment "{text}"'


def _host(address: str) -> str:
    return f"{address}/{32 if family(address) == 4 else 128}"


def _management_rules(chain: str, comment: str, mgmt: Management,
                      version: int) -> list[str]:
    """The runner's own path: ACCEPT first, in the family it uses (none
    in the other: it cannot be cut there); without a known address,
    established flows on the port, in both families."""
    if mgmt.port is None:
        return []
    if mgmt.address:
        if family(mgmt.address) != version:
            return []
        return [f"-A {chain} -s {_host(mgmt.address)} -p tcp -m tcp "
                f"--dport {mgmt.port} {comment} -j ACCEPT",
                f"-A {chain} -d {_host(mgmt.address)} -p tcp -m tcp "
                f"--sport {mgmt.port} {comment} -j ACCEPT"]
    established = "-m conntrack --ctstate ESTABLISHED"
    return [f"-A {chain} -p tcp -m tcp --dport {mgmt.port} {established} "
            f"{comment} -j ACCEPT",
            f"-A {chain} -p tcp -m tcp --sport {mgmt.port} {established} "
            f"{comment} -j ACCEPT"]


def _cut_rules(chain: str, comment: str, cut: Cut) -> list[str]:
    ends = []
    if cut.direction in ("both", "from"):
        ends.append(f"-s {_host(cut.peer_address)}")
    if cut.direction in ("both", "to"):
        ends.append(f"-d {_host(cut.peer_address)}")
    # from/to are about who opened the flow; both cuts every packet
    flow = "" if cut.direction == "both" else " -m conntrack --ctdir ORIGINAL"
    rules = []
    for end in ends:
        if cut.mode == "reject" and cut.direction == "both":
            # the refusals themselves (RST, ICMP; conntrack calls them
            # RELATED) must get through the opposite end's REJECT
            rules.append(f"-A {chain} {end} -m conntrack --ctstate RELATED "
                         f"{comment} -j RETURN")
        rules += [f"-A {chain} {end}{flow}{match} {comment} -j {target}"
                  for match, target in _targets(cut)]
    return rules


def _targets(cut: Cut) -> list[tuple[str, str]]:
    """(protocol match, target) pairs that together make the cut."""
    reset = "REJECT --reject-with tcp-reset"
    if cut.ports:
        target = "DROP" if cut.mode == "drop" else reset
        return [(match, target)
                for match in _tcp_matches(sorted(set(cut.ports)))]
    if cut.mode == "drop":
        return [("", "DROP")]
    unreachable = "icmp-port-unreachable" if family(
        cut.peer_address) == 4 else "icmp6-port-unreachable"
    return [(" -p tcp", reset),
            ("", f"REJECT --reject-with {unreachable}")]


def _tcp_matches(ports: list[int]) -> list[str]:
    if len(ports) == 1:
        return [f" -p tcp -m tcp --dport {ports[0]}"]
    chunks = [ports[i:i + MULTIPORT_MAX]
              for i in range(0, len(ports), MULTIPORT_MAX)]
    return [f" -p tcp -m multiport --dports {','.join(map(str, chunk))}"
            for chunk in chunks]


def apply_script(plan: FaultPlan, setup: NodeSetup) -> str:
    """The script that applies plan on setup.node and arms its expiry:
    the timer first, then one iptables-restore transaction per address
    family, then the degradations' tc qdiscs and filters
    (chaosk3s.faults.netem); if one fails, everything of the plan is
    healed."""
    chain = chain_name(plan.run_id)
    degrade = netem.apply_lines(plan, setup.node, chain,
                                setup.management.port,
                                setup.management.address)
    ttl = _seconds(plan.ttl_seconds)
    loads = []
    for version in families(plan, setup.node):
        tool = "iptables-restore" if version == 4 else "ip6tables-restore"
        rules = "\n".join(node_rules(plan, setup.node, setup.management,
                                     version))
        loads += [f"{tool} -w 5 --noflush <<'{shell.EOF}' || "
                  f"{{ chaosk3s_heal {chain} cancel; exit 1; }}",
                  rules, shell.EOF]
    ipv6 = 6 in families(plan, setup.node)
    tools = ("iptables-restore",) + (("ip6tables-restore",) if ipv6
                                     else ()) + (("tc", "ip") if degrade
                                                 else ())
    return "\n".join([
        shell.prelude(setup.node_state, tools=tools),
        shell.HEAL_FUNCTIONS,
        f"chaosk3s_heal {chain} cancel || exit 1",
        shell.heal_timer(chain, ttl, setup.timer),
        *loads, *degrade,
        *flapper_lines(plan, chain, setup.timer, [*loads, *degrade]),
        f"echo applied {chain} expires in {ttl}s",
        ""])


def heal_script(setup: NodeSetup,
                target: FaultPlan | str | None = None) -> str:
    """Remove the jumps and chain of a plan or run id, or (None) of every
    chain chaosk3s owns, and cancel their timers. Idempotent."""
    pattern = _pattern(target)
    return "\n".join([
        shell.prelude(setup.node_state), shell.HEAL_FUNCTIONS,
        f"chaosk3s_heal {shlex.quote(pattern)} cancel || exit 1", ""])


def _pattern(target: FaultPlan | str | None) -> str:
    """An ERE matching the chain name(s) to heal."""
    if target is None:
        return CHAIN_PREFIX + "[A-Za-z0-9_-]+"
    run_id = target.run_id if isinstance(target, FaultPlan) else target
    return chain_name(run_id)


def readback_script(setup: NodeSetup) -> str:
    """Print every CHAOSK3S rule and timer on the node (see readback)."""
    return "\n".join([shell.prelude(setup.node_state), shell.HEAL_FUNCTIONS,
                      shell.READBACK, ""])


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def node_lines(plan: FaultPlan, node: str,
               management: Management = Management()) -> list[str]:
    """Everything plan loads on node, as people read it: the
    iptables-restore input per family, then the tc commands."""
    return [line for version in families(plan, node)
            for line in node_rules(plan, node, management, version)] + \
        netem.shown_lines(plan, node, management.port, management.address)


def dry_run(plan: FaultPlan,
            setups: dict[str, NodeSetup] | None = None) -> dict[str, dict]:
    """Per node, exactly what applying plan would run; runs nothing."""
    validate_plan(plan)
    setups = setups or {}
    out = {}
    for node in plan.nodes():
        setup = setups.get(node) or NodeSetup(node)
        out[node] = {
            "chain": chain_name(plan.run_id),
            "rules": node_lines(plan, node, setup.management),
            "expires_after_seconds": plan.ttl_seconds,
            "timer": setup.timer,
            "script": apply_script(plan, setup),
        }
    return out


def render_dry_run(plan: FaultPlan,
                   setups: dict[str, NodeSetup] | None = None,
                   scripts: bool = False) -> str:
    """dry_run as text for people: per node the rules (and scripts)."""
    what = f"{len(plan.cuts)} cut(s)" + (
        f", {len(plan.degradations)} degraded link(s)"
        if plan.degradations else "")
    lines = [f"plan {plan.run_id}: {what} on "
             f"{len(plan.nodes())} node(s), expiring on each node after "
             f"{_seconds(plan.ttl_seconds)}s"]
    if plan.flap is not None:
        flap = plan.flap
        lines.append(f"flapping on each node: on {_seconds(flap.on_seconds)}"
                     f"s of every {_seconds(flap.period_seconds)}s, "
                     f"{flap.count} time(s), then off")
    for node, item in dry_run(plan, setups).items():
        how = ", ".join(
            (["iptables-restore --noflush"] if families(plan, node)
             else []) + (["tc, DEV: the interface the peer's route "
                          "leaves by"] if netem.node_netem(plan, node)
                         else []))
        lines.append(f"\n== {node} (chain {item['chain']}, {how}) ==")
        lines += item["rules"]
        if scripts:
            lines += ["-- script --", item["script"]]
    return "\n".join(lines)
