"""Degraded links as data: plans, the tc script, validation and the
read-back parser (root-free; tests/lab/test_links.py runs them)."""

import pytest

from chaosk3s import actions
from chaosk3s.errors import ArgumentError, SpecError
from chaosk3s.faults.netem import handle, netem_words, parse_rate_bits
from chaosk3s.faults.partition import (
    Management,
    NodeSetup,
    apply_script,
    render_dry_run,
    validate_plan,
)
from chaosk3s.faults.readback import parse_readback, summary
from chaosk3s.links import plan_degradation
from chaosk3s.model import Degradation, FaultPlan, Netem, Node

A, B, C = (Node(n, r, a, None) for n, r, a in (
    ("agent-0", "agent", "10.0.0.20"), ("agent-1", "agent", "10.0.0.21"),
    ("server-cp-0", "control-plane", "10.0.0.12")))
SLOW = Netem(delay_ms=300, jitter_ms=30, correlation=25, loss=5)


def plan(*items: Degradation, ttl: float = 60) -> FaultPlan:
    return FaultPlan("run1", degradations=items, ttl_seconds=ttl)


@pytest.mark.parametrize("direction,holders", [
    ("to", {("agent-0", "server-cp-0"), ("agent-1", "server-cp-0")}),
    ("from", {("server-cp-0", "agent-0"), ("server-cp-0", "agent-1")}),
    ("both", {("agent-0", "server-cp-0"), ("agent-1", "server-cp-0"),
              ("server-cp-0", "agent-0"), ("server-cp-0", "agent-1")})])
def test_direction_says_whose_egress_is_degraded(direction, holders):
    made = plan_degradation([A, B], [C], SLOW, direction, [6443], 30, "f")
    assert {(d.node, d.peer) for d in made.degradations} == holders
    assert {d.ports for d in made.degradations} == {(6443,)}
    assert made.cuts == () and made.ttl_seconds == 30


def test_every_address_of_a_dual_stack_peer_is_matched():
    dual = Node("server-cp-0", "control-plane", "10.0.0.12", None,
                addresses=("10.0.0.12", "fd00::12"))
    made = plan_degradation([A], [dual], SLOW, "to", None, 30, "f")
    assert [d.peer_address for d in made.degradations] == [
        "10.0.0.12", "fd00::12"]


def test_the_script_arms_the_timer_first_then_tc_only_for_the_peers():
    made = plan(Degradation("agent-0", "server-cp-0", "10.0.0.12", SLOW,
                            (6443,)))
    script = apply_script(made, NodeSetup("agent-0"))
    major = handle("run1")
    timer = script.index("chaosk3s_timer=CHAOSK3S-run1")
    root = script.index(f"root handle {major}: htb")
    assert timer < root
    assert "iptables-restore -w" not in script  # no cut, no rules
    assert (f"parent {major}:4 netem delay 300000us 30000us 25% loss 5%"
            in script)
    assert (f"classid {major}:4 htb rate 100gbit ceil 100gbit" in script)
    for end in ("dport", "sport"):
        assert (f"match ip dst 10.0.0.12/32 match ip protocol 6 0xff "
                f"match ip {end} 6443 0xffff flowid {major}:4") in script
    # the record names the fault before its qdisc exists, so a heal or
    # the timer finds whatever part of it landed
    assert script.index('>> "$STATE"/CHAOSK3S-run1.tc') < root


def test_the_management_path_is_kept_out_of_netem():
    made = plan(Degradation("agent-0", "runner", "10.0.0.99", SLOW))
    setup = NodeSetup("agent-0", Management(22, "10.0.0.99"))
    script = apply_script(made, setup)
    major = handle("run1")
    assert (f"protocol ip prio 1 u32 match ip dst 10.0.0.99/32 match ip "
            f"protocol 6 0xff match ip sport 22 0xffff flowid {major}:1"
            ) in script
    assert "ip6 sport 22" not in script  # the runner is IPv4 only


def test_the_plan_shows_exactly_what_tc_gets():
    made = plan(Degradation("agent-0", "server-cp-0", "10.0.0.12", SLOW))
    text = render_dry_run(made, {"agent-0": NodeSetup("agent-0")})
    major = handle("run1")
    assert "1 degraded link(s) on 1 node(s), expiring on each node " \
        "after 60s" in text
    assert (f"tc filter add dev DEV parent {major}: protocol ip prio 3 u32 "
            f"match ip dst 10.0.0.12/32 flowid {major}:4  # server-cp-0"
            in text)
    assert f"netem {' '.join(netem_words(SLOW))}" in text


@pytest.mark.parametrize("netem,says", [
    (Netem(loss=101), "loss 101% must be from 0 to 100"),
    (Netem(delay_ms=-5), "delay -5ms must be from 0"),
    (Netem(jitter_ms=10), "give a delay as well"),
    (Netem(reorder=10, loss=1), "give a delay as well"),
    (Netem(), "no impairment given"),
    (Netem(corrupt=-1), "corrupt -1% must be from 0 to 100")])
def test_impossible_netem_is_refused_by_the_plan(netem, says):
    with pytest.raises(SpecError, match=says):
        validate_plan(plan(Degradation("agent-0", "b", "10.0.0.1",
                                       netem)))


def test_one_netem_per_node_and_peer_addresses_checked():
    with pytest.raises(SpecError, match="share one netem"):
        validate_plan(plan(
            Degradation("agent-0", "b", "10.0.0.1", SLOW),
            Degradation("agent-0", "c", "10.0.0.2", Netem(loss=1))))
    with pytest.raises(SpecError, match="is not an IPv4 or IPv6"):
        validate_plan(plan(Degradation("agent-0", "b", "10.0.0.1; reboot",
                                       SLOW)))


@pytest.mark.parametrize("text,bits", [
    ("1mbit", 10**6), ("500kbit", 500_000), ("2mbps", 16 * 10**6),
    ("1.5Mbit", 1_500_000), ("", 0)])
def test_rates_in_tc_units(text, bits):
    assert parse_rate_bits(text) == bits


@pytest.mark.parametrize("value", ["0mbit", "1furlong", "mbit", "7bit",
                                   "10"])
def test_bad_rates_are_refused(value):
    with pytest.raises(ValueError):
        parse_rate_bits(value)


@pytest.mark.parametrize("given,says", [
    ({"loss": 150}, "loss=150 is invalid: expected a percentage"),
    ({"delay_ms": -300}, "delay_ms=-300 is invalid: expected milliseconds"),
    ({"rate": "10 furlongs"}, "rate='10 furlongs' is invalid: expected a "
                              "rate"),
    ({"rate": "0kbit"}, "is no bandwidth"),
    ({"loss": "5%"}, "loss='5%' is invalid: expected a percentage")])
def test_the_action_refuses_bad_input_in_one_line_before_anything(given,
                                                                  says):
    # no target configured: had the arguments passed, reaching one would
    # raise something else
    with pytest.raises(ArgumentError) as raised:
        actions.degrade_links(**given)
    assert says in str(raised.value) and "\n" not in str(raised.value)


def test_the_action_refuses_an_empty_impairment_before_the_nodes():
    with pytest.raises(SpecError, match="no impairment given"):
        from chaosk3s.links import netem_of
        netem_of({"delay_ms": 0, "jitter_ms": 0, "correlation": 0,
                  "loss": 0, "duplicate": 0, "corrupt": 0, "reorder": 0,
                  "rate": ""})


P = "qdisc eth0 qdisc"
F = "filter eth0 filter parent {m}: protocol ip pref 2 u32 chain 0"
READBACK = "\n".join([
    "#rules", "#tc",
    "R CHAOSK3S-run1 eth0 {m} - - run1",
    "R CHAOSK3S-run1 eth0 {m} server-cp-0 10.0.0.12 run1",
    "R CHAOSK3S-run1 eth0 {m} gone-node 10.0.0.13 run1",
    P + " htb {m}: root refcnt 3 r2q 10 default 0 direct_packets_stat 0",
    "class eth0 class htb {m}:4 root leaf 8001: prio 0 rate 1Mbit ceil "
    "1Mbit burst 1600b cburst 1600b",
    P + " netem 8001: parent {m}:4 limit 1000 delay 300ms  30ms 25% "
    "loss 5%",
    F, F + " fh 800: ht divisor 1",
    F + " fh 800::800 order 2048 key ht 800 bkt 0 *flowid {m}:4 not_in_hw",
    "filter eth0   match 0a00000c/ffffffff at 16",
    "#timers", "CHAOSK3S-run1 pid 4242 1764400000 yes run1",
    "#now 1764399990", ""])


def test_readback_reports_links_from_what_tc_shows():
    major = handle("run1")
    (fault,) = parse_readback("agent-0", READBACK.replace("{m}", major))
    assert fault.kind == "degradation" and fault.run_id == "run1"
    assert fault.cuts == () and fault.timer.alive
    assert [(x.peer, x.peer_address, x.device, x.steered)
            for x in fault.links] == [
        ("server-cp-0", "10.0.0.12", "eth0", True),
        ("gone-node", "10.0.0.13", "eth0", False)]
    assert fault.links[0].netem.startswith("limit 1000 delay 300ms")
    assert fault.links[0].rate == "1Mbit"
    assert "degrade to server-cp-0 (10.0.0.12) on eth0" in \
        summary([fault])[0]


def test_a_record_whose_qdisc_is_gone_still_reads_back_until_healed():
    text = "#rules\n#tc\nR CHAOSK3S-run1 eth0 1234 b 10.0.0.1 run1\n" \
        "#timers\n#now 1\n"
    (fault,) = parse_readback("agent-0", text)
    assert fault.links[0].netem == "" and not fault.links[0].steered


def test_a_flapping_fault_starts_its_flapper_after_the_first_on_phase():
    from chaosk3s.model import Cut, Flap
    made = FaultPlan("run1", (Cut("agent-0", "b", "10.0.0.1"),), 30,
                     flap=Flap(4, 1, 5))
    script = apply_script(made, NodeSetup("agent-0"))
    load = script.index("iptables-restore -w 5 --noflush")
    flapper = script.index("chaosk3s_timer=CHAOSK3S-run1; $flapjob")
    assert script.index("chaosk3s_timer=CHAOSK3S-run1; sleep 30") < load \
        < flapper
    assert '"$STATE/CHAOSK3S-run1.flap"' in script
    # the expiry stops the flapper before it heals
    assert "chaosk3s_cancel CHAOSK3S-run1 flap\nchaosk3s_heal " \
        "CHAOSK3S-run1 keep" in script
    assert "flapping on each node: on 1s of every 4s, 5 time(s)" in \
        render_dry_run(made)


@pytest.mark.parametrize("flap,says", [
    ((4, 1, 10), "lasts 40s, more than the ttl 30s"),
    ((4, 0.2, 2), "at least 0.5s"),
    ((4, 3.9, 2), "at least 0.5s"),
    ((4, 1, 0), "count must be a whole number, 1 or more")])
def test_a_schedule_the_ttl_does_not_cover_is_refused(flap, says):
    from chaosk3s.model import Cut, Flap
    with pytest.raises(SpecError, match=says):
        validate_plan(FaultPlan("run1", (Cut("agent-0", "b", "10.0.0.1"),),
                                30, flap=Flap(*flap)))


def test_readback_shows_a_flapper_also_in_its_off_phase():
    text = ("#rules\n#tc\n#timers\n"
            "CHAOSK3S-run1 pid 41 1764400000 yes run1\n"
            "CHAOSK3S-run1 pid 42 1764399999 yes run1 flap\n#now 1\n")
    (fault,) = parse_readback("agent-0", text)
    assert fault.chain == "CHAOSK3S-run1" and fault.cuts == ()
    assert fault.timer.ident == "41" and fault.flapper.ident == "42"


def test_the_quorum_guard_counts_another_runs_degraded_etcd_link():
    from chaosk3s.faults.guard import _note
    text = ("#rules\n#tc\nR CHAOSK3S-old1 eth0 1234 server-etcd-1 "
            "10.0.0.11 old1\n#timers\n#now 1\n")
    (fault,) = parse_readback("server-etcd-0", text)
    down, cuts = {}, {}
    _note(fault, {}, down, cuts)
    assert list(cuts) == [frozenset(("server-etcd-0", "server-etcd-1"))]
    assert "old1" in cuts[frozenset(("server-etcd-0", "server-etcd-1"))]
