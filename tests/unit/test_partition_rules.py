"""Partition plans -> iptables rules and node scripts (pure, no root)."""

import re
import subprocess

import pytest

from chaosk3s.errors import SpecError
from chaosk3s.faults import (
    Management,
    NodeSetup,
    apply_script,
    chain_name,
    dry_run,
    heal_script,
    node_rules,
    parse_readback,
    readback_script,
    render_dry_run,
)
from chaosk3s.faults.partition import CHAIN_MAX, short_id
from chaosk3s.faults.readback import summary
from chaosk3s.model import Cut, FaultPlan

A, B, C = "10.0.0.10", "10.0.0.11", "10.0.0.12"


def plan(*cuts: Cut, run_id: str = "r-1a2b", ttl: float = 30) -> FaultPlan:
    return FaultPlan(run_id=run_id, cuts=cuts, ttl_seconds=ttl)


def rules_of(p: FaultPlan, node: str, **kw) -> list[str]:
    """Only the chain's own rules (no table header, jumps or COMMIT)."""
    return [r for r in node_rules(p, node, **kw) if r.startswith("-A ")]


# -- chain naming ---------------------------------------------------------

def test_short_run_ids_name_the_chain_directly():
    assert chain_name("r-1a2b") == "CHAOSK3S-r-1a2b"


def test_long_or_odd_run_ids_are_hashed_within_28_chars():
    long_a = "experiment-2026-11-25T21:40:03.120000-agent-partition"
    long_b = long_a.replace("agent", "etcd0")
    names = {chain_name(long_a), chain_name(long_b), chain_name("a:b")}
    assert len(names) == 3
    for name in names:
        assert len(name) <= CHAIN_MAX
        assert re.fullmatch(r"CHAOSK3S-[A-Za-z0-9_-]+", name)
    assert chain_name(long_a) == chain_name(long_a)  # stable for heal
    assert short_id(long_a).startswith("experiment-")  # readable head


@pytest.mark.parametrize("bad", ["", "-x", "a b", 'a"b', "a;rm", "x" * 200])
def test_run_ids_that_could_break_a_comment_or_script_are_refused(bad):
    with pytest.raises(SpecError, match="run id"):
        chain_name(bad)


# -- rules ----------------------------------------------------------------

def test_both_drop_cuts_every_packet_each_way_in_our_chain_only():
    p = plan(Cut("a", "b", B), Cut("b", "a", A))
    lines = node_rules(p, "a")
    assert lines[0] == "*filter" and lines[-1] == "COMMIT"
    assert lines[1] == ":CHAOSK3S-r-1a2b - [0:0]"
    assert rules_of(p, "a") == [
        f'-A CHAOSK3S-r-1a2b -s {B}/32 -m comment --comment '
        f'"chaosk3s:r-1a2b peer=b" -j DROP',
        f'-A CHAOSK3S-r-1a2b -d {B}/32 -m comment --comment '
        f'"chaosk3s:r-1a2b peer=b" -j DROP']
    hooks = [r for r in lines if r.startswith("-I ")]
    assert hooks == [
        f'-I {h} 1 -m comment --comment "chaosk3s:r-1a2b" -j CHAOSK3S-r-1a2b'
        for h in ("INPUT", "OUTPUT")]
    # nothing outside our chain but the two tagged jumps
    others = [r for r in lines[2:-1] if "CHAOSK3S-r-1a2b" not in r.split()[1]]
    assert others == hooks


def test_only_the_nodes_own_cuts_are_in_its_rules():
    p = plan(Cut("a", "b", B), Cut("c", "b", B))
    assert {r.split()[3] for r in rules_of(p, "a")} == {f"{B}/32"}
    assert rules_of(p, "b") == []  # b is only a peer here


def test_from_and_to_are_about_who_opens_the_flow():
    frm = rules_of(plan(Cut("a", "b", B, direction="from")), "a")
    to = rules_of(plan(Cut("a", "b", B, direction="to")), "a")
    assert len(frm) == 1 and f"-s {B}/32" in frm[0]
    assert len(to) == 1 and f"-d {B}/32" in to[0]
    for rule in frm + to:
        assert "-m conntrack --ctdir ORIGINAL" in rule


def test_reject_resets_tcp_and_refuses_the_rest():
    rules = rules_of(plan(Cut("a", "b", B, mode="reject",
                              direction="from")), "a")
    assert [r.split(" -j ", 1)[1] for r in rules] == [
        "REJECT --reject-with tcp-reset",
        "REJECT --reject-with icmp-port-unreachable"]
    assert " -p tcp " in rules[0] and " -p " not in rules[1]


def test_ports_limit_the_cut_to_tcp_destination_ports():
    one = rules_of(plan(Cut("a", "b", B, direction="to", ports=(6443,))),
                   "a")
    assert one == [f'-A CHAOSK3S-r-1a2b -d {B}/32 -m conntrack --ctdir '
                   f'ORIGINAL -p tcp -m tcp --dport 6443 -m comment '
                   f'--comment "chaosk3s:r-1a2b peer=b" -j DROP']
    many = rules_of(plan(Cut("a", "b", B, mode="reject",
                             ports=tuple(range(1000, 1020)))), "a")
    # 20 ports: two multiport chunks (max 15) per end, TCP resets only
    rejects = [r for r in many if "-j REJECT" in r]
    assert len(rejects) == 4
    assert all("REJECT --reject-with tcp-reset" in r for r in rejects)
    assert "--dports 1000,1001" in rejects[0]
    assert "1015,1016" in rejects[1]


def test_reject_both_lets_the_refusals_themselves_through():
    rules = rules_of(plan(Cut("a", "b", B, mode="reject")), "a")
    # per end: RELATED (the RST/ICMP a REJECT sends) returns first, else
    # the REJECT at the other end would swallow it and connects hang
    assert [r.split(" -j ")[1].split()[0] for r in rules] == [
        "RETURN", "REJECT", "REJECT", "RETURN", "REJECT", "REJECT"]
    assert f"-s {B}/32 -m conntrack --ctstate RELATED" in rules[0]
    assert f"-d {B}/32 -m conntrack --ctstate RELATED" in rules[3]
    one_way = rules_of(plan(Cut("a", "b", B, mode="reject",
                                direction="to")), "a")
    assert "RETURN" not in " ".join(one_way)


def test_management_path_is_accepted_first():
    p = plan(Cut("a", "b", B))
    rules = rules_of(p, "a", management=Management(22, "10.0.0.1"))
    assert rules[0].startswith("-A CHAOSK3S-r-1a2b -s 10.0.0.1/32 -p tcp "
                               "-m tcp --dport 22 ")
    assert rules[1].startswith("-A CHAOSK3S-r-1a2b -d 10.0.0.1/32 -p tcp "
                               "-m tcp --sport 22 ")
    assert all(r.endswith("-j ACCEPT") for r in rules[:2])
    assert "DROP" in rules[2]
    no_address = rules_of(p, "a", management=Management(22))
    assert "--ctstate ESTABLISHED" in no_address[0]
    assert rules_of(p, "a", management=Management()) == rules[2:]


@pytest.mark.parametrize("cut,message", [
    (Cut("a", "b", B, direction="sideways"), "direction"),
    (Cut("a", "b", B, mode="explode"), "mode"),
    (Cut("a", "b", B, ports=(0,)), "port"),
    (Cut("a", "b", B, ports=(70000,)), "port"),
    (Cut("a", "b", "fd00::1/64"), "IPv4 or IPv6"),
    (Cut("a", "b", "b.example"), "IPv4 or IPv6"),
    (Cut("a", "a", A), "itself"),
    (Cut("a", "b c", B), "node name"),
])
def test_invalid_cuts_are_refused_before_anything_runs(cut, message):
    with pytest.raises(SpecError, match=message):
        node_rules(plan(cut), "a")


def test_ipv6_cuts_go_to_ip6tables_and_ipv4_cuts_to_iptables():
    """Reproduction (issue 12): IPv6 peers were refused mid-apply and no
    ip6tables rules were written, so a dual-stack "partition" left the
    IPv6 path open. Now each family gets its own transaction."""
    p = plan(Cut("a", "b", B), Cut("a", "b", "fd00::11", mode="reject"))
    v4 = rules_of(p, "a", version=4)
    v6 = rules_of(p, "a", version=6)
    assert all("fd00::" not in r for r in v4) and f"{B}/32" in v4[0]
    assert all(B not in r for r in v6)
    assert any("-s fd00::11/128" in r and "tcp-reset" in r for r in v6)
    assert any("icmp6-port-unreachable" in r for r in v6)
    script = apply_script(p, NodeSetup("a"))
    sh_syntax_ok(script)
    assert "iptables-restore -w 5 --noflush <<" in script
    assert "ip6tables-restore -w 5 --noflush <<" in script
    assert "command -v ip6tables-restore" in script
    v4_only = apply_script(plan(Cut("a", "b", B)), NodeSetup("a"))
    assert "ip6tables-restore -w" not in v4_only


def test_the_runners_path_stays_open_in_the_family_it_uses():
    p = plan(Cut("a", "b", B), Cut("a", "b", "fd00::11"))
    over_v6 = Management(22, "fd00::1")
    assert "-s fd00::1/128 -p tcp -m tcp --dport 22" in rules_of(
        p, "a", management=over_v6, version=6)[0]
    assert not any("ACCEPT" in r for r in rules_of(
        p, "a", management=over_v6, version=4))
    unknown = Management(22)
    for version in (4, 6):
        assert "--ctstate ESTABLISHED" in rules_of(
            p, "a", management=unknown, version=version)[0]
    with pytest.raises(SpecError, match="runner's address"):
        node_rules(p, "a", Management(22, "not-an-ip"))


def test_node_setups_refuse_names_that_would_escape_the_state_dir():
    for bad in ("../etc", "a/b", ""):
        with pytest.raises(SpecError, match="node name"):
            NodeSetup(bad)
    with pytest.raises(SpecError, match="timer"):
        NodeSetup("a", timer="cron")


def test_empty_plans_and_bad_ttls_are_refused():
    with pytest.raises(SpecError, match="no cuts"):
        node_rules(plan(), "a")
    for ttl in (0, -1, 10 ** 9):
        with pytest.raises(SpecError, match="ttl"):
            node_rules(plan(Cut("a", "b", B), ttl=ttl), "a")


# -- scripts --------------------------------------------------------------

def sh_syntax_ok(script: str) -> None:
    result = subprocess.run(["sh", "-n"], input=script, text=True,
                            capture_output=True, check=False, timeout=10)
    assert result.returncode == 0, result.stderr


def timer_job(script: str) -> str:
    """The heal job the timer runs, as sh itself unquotes it."""
    line = script[script.index("job="):script.index("\nexpires=")]
    return subprocess.run(["sh", "-c", f'{line}\nprintf "%s" "$job"'],
                          capture_output=True, text=True, check=True,
                          timeout=10).stdout


def test_apply_script_arms_the_timer_before_loading_rules():
    p = plan(Cut("a", "b", B, mode="reject"), ttl=2.5)
    script = apply_script(p, NodeSetup("a", state_dir="/run/x"))
    sh_syntax_ok(script)
    assert "STATE=/run/x/a\n" in script  # the node name keeps lab nodes apart
    timer = script.index("setsid nohup")
    restore = script.index("iptables-restore -w 5 --noflush <<")
    assert script.index("chaosk3s_heal CHAOSK3S-r-1a2b cancel") < timer
    assert timer < restore
    assert "chaosk3s_timer=CHAOSK3S-r-1a2b; sleep 2.5" in script
    assert "--on-active=2.5s" in script
    body = script[restore:].split("\n", 1)[1].split("\nCHAOSK3S_RULES")[0]
    assert body.splitlines() == node_rules(p, "a")
    job = timer_job(script)
    sh_syntax_ok(job)
    assert "chaosk3s_heal CHAOSK3S-r-1a2b keep" in job


def test_timer_mode_auto_prefers_systemd_only_when_asked():
    p = plan(Cut("a", "b", B))
    assert "if [ setsid = auto ]" in apply_script(p, NodeSetup("a"))
    assert "if [ auto = auto ]" in apply_script(
        p, NodeSetup("a", timer="auto"))


def test_scripts_never_flush_tables_or_builtin_chains():
    p = plan(Cut("a", "b", B), Cut("a", "c", C, direction="to"))
    scripts = [apply_script(p, NodeSetup("a")),
               heal_script(NodeSetup("a"), p), heal_script(NodeSetup("a")),
               readback_script(NodeSetup("a"))]
    for script in scripts:
        sh_syntax_ok(script)
        text = script + timer_job(script) if "job=" in script else script
        assert not re.search(r"iptables(-restore)?[^\n]* (-F|--flush)\b",
                             text)
        assert "-P INPUT" not in text and "-X INPUT" not in text
        # the only -F/-X are for the chains heal found by name
        assert set(re.findall(r"-[FX] [^\s\\]+", text)) <= {"-F %s", "-X %s"}


def test_heal_targets_one_run_or_every_chaosk3s_chain():
    one = heal_script(NodeSetup("a"), "r-1a2b")
    assert "chaosk3s_heal CHAOSK3S-r-1a2b cancel" in one
    assert heal_script(NodeSetup("a"), plan(Cut("a", "b", B))) == one
    every = heal_script(NodeSetup("a"))
    assert "chaosk3s_heal 'CHAOSK3S-[A-Za-z0-9_-]+' cancel" in every


# -- read-back ------------------------------------------------------------

READBACK = """#rules
-N CHAOSK3S-r-1a2b
-N CHAOSK3S-old
-A INPUT -m comment --comment "chaosk3s:r-1a2b" -j CHAOSK3S-r-1a2b
-A OUTPUT -m comment --comment "chaosk3s:r-1a2b" -j CHAOSK3S-r-1a2b
-A CHAOSK3S-r-1a2b -s 10.0.0.1/32 -p tcp -m tcp --dport 22 -m comment \
--comment "chaosk3s:r-1a2b management" -j ACCEPT
-A CHAOSK3S-r-1a2b -s 10.0.0.11/32 -m conntrack --ctstate RELATED -m comment \
--comment "chaosk3s:r-1a2b peer=b" -j RETURN
-A CHAOSK3S-r-1a2b -s 10.0.0.11/32 -p tcp -m comment --comment \
"chaosk3s:r-1a2b peer=b" -j REJECT --reject-with tcp-reset
-A CHAOSK3S-r-1a2b -s 10.0.0.11/32 -m comment --comment \
"chaosk3s:r-1a2b peer=b" -j REJECT --reject-with icmp-port-unreachable
-A CHAOSK3S-r-1a2b -d 10.0.0.11/32 -p tcp -m comment --comment \
"chaosk3s:r-1a2b peer=b" -j REJECT --reject-with tcp-reset
-A CHAOSK3S-r-1a2b -d 10.0.0.11/32 -m comment --comment \
"chaosk3s:r-1a2b peer=b" -j REJECT --reject-with icmp-port-unreachable
-A CHAOSK3S-r-1a2b -s 10.0.0.12/32 -p tcp -m conntrack --ctdir ORIGINAL \
-m multiport --dports 80,81 -m comment --comment "chaosk3s:r-1a2b peer=c" \
-j DROP
-A CHAOSK3S-old -d 10.0.0.13/32 -m conntrack --ctdir ORIGINAL -m comment \
--comment "chaosk3s:old-run peer=d" -j DROP
#timers
CHAOSK3S-r-1a2b pid 5659 1795643635 yes
CHAOSK3S-gone pid 77 1795640000 no
#now 1795643633
"""


def test_readback_gives_runs_peers_directions_modes_and_timers():
    faults = {f.chain: f for f in parse_readback("a", READBACK)}
    assert sorted(faults) == ["CHAOSK3S-gone", "CHAOSK3S-old",
                              "CHAOSK3S-r-1a2b"]
    main = faults["CHAOSK3S-r-1a2b"]
    assert main.run_id == "r-1a2b" and main.hooks == ("INPUT", "OUTPUT")
    assert [(c.peer, c.peer_address, c.direction, c.mode, c.ports)
            for c in main.cuts] == [
        ("b", "10.0.0.11", "both", "reject", ()),
        ("c", "10.0.0.12", "from", "drop", (80, 81))]
    assert len(main.management) == 1
    assert main.timer.kind == "pid" and main.timer.alive
    assert main.timer.expires_at == 1795643635
    old = faults["CHAOSK3S-old"]  # a chain nothing jumps to any more
    assert old.run_id == "old-run" and old.hooks == ()
    assert [(c.peer, c.direction) for c in old.cuts] == [("d", "to")]
    gone = faults["CHAOSK3S-gone"]  # a timer whose chain is gone
    assert gone.cuts == () and not gone.timer.alive
    lines = summary(list(faults.values()))
    assert "a: r-1a2b drop from c (10.0.0.12) tcp/80,81" in lines


def test_readback_ignores_other_tools_rules_and_empty_nodes():
    text = ("#rules\n#timers\n#now 1\n")
    assert parse_readback("a", text) == []
    assert parse_readback("a", "") == []


def test_readback_round_trips_the_generated_rules():
    p = plan(Cut("a", "b", B, direction="to", mode="reject", ports=(6443,)),
             Cut("a", "c", C))
    lines = node_rules(p, "a", Management(22, "10.0.0.1"))
    as_listed = ["#rules", "-N CHAOSK3S-r-1a2b"] + [
        line.replace("-I INPUT 1", "-A INPUT").replace(
            "-I OUTPUT 1", "-A OUTPUT") for line in lines
        if line.startswith(("-A", "-I"))]
    (fault,) = parse_readback("a", "\n".join(as_listed))
    assert fault.run_id == "r-1a2b"
    assert [(c.peer, c.direction, c.mode, c.ports) for c in fault.cuts] == [
        ("b", "to", "reject", (6443,)), ("c", "both", "drop", ())]
    assert len(fault.management) == 2


# -- dry run --------------------------------------------------------------

def test_dry_run_shows_per_node_rules_and_scripts():
    p = plan(Cut("a", "b", B), Cut("b", "a", A, direction="from"), ttl=60)
    setups = {"a": NodeSetup("a", Management(22, "10.0.0.1"), "/run/y")}
    preview = dry_run(p, setups)
    assert sorted(preview) == ["a", "b"]
    assert preview["a"]["rules"] == node_rules(p, "a",
                                               Management(22, "10.0.0.1"))
    assert preview["a"]["script"] == apply_script(p, setups["a"])
    assert preview["b"]["script"] == apply_script(p, NodeSetup("b"))
    text = render_dry_run(p, setups)
    assert "plan r-1a2b: 2 cut(s) on 2 node(s)" in text
    assert "expiring on each node after 60s" in text
    for node in ("a", "b"):
        assert f"== {node} (chain CHAOSK3S-r-1a2b" in text
        for rule in preview[node]["rules"]:
            assert rule in text
    assert "setsid" not in text
    assert "setsid nohup" in render_dry_run(p, setups, scripts=True)
