"""The journal section's per-node figures from scripted readiness
timelines and fault windows: outages, time to NotReady after the fault,
time to Ready after the heal, and the edge cases that used to mix them."""

from datetime import UTC, datetime, timedelta

from chaosk3s import journal_section
from chaosk3s.journal_section import node_summary, section
from chaosk3s.model import Node

T0 = datetime(2026, 11, 25, 21, 39, 50, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def changes(node: str, *steps: tuple[float, str]) -> list[dict]:
    """A node's timeline: (seconds into the run, Ready status)."""
    return [{"node": node, "at": at(s), "ready": ready}
            for s, ready in steps]


def fault(fid: str, start: float | None, end: float | None,
          nodes: tuple[str, ...] = ("agent-0",),
          peers: tuple[str, ...] = ()) -> dict:
    entry = {"id": fid, "kind": "partition", "nodes": list(nodes),
             "description": f"fault {fid}",
             "started_at": at(start) if start is not None else None,
             "ended_at": at(end) if end is not None else None}
    if peers:
        entry["peers"] = list(peers)
    return entry


def summary(timeline: list[dict], faults: list[dict],
            final: str | None = "True", name: str = "agent-0") -> dict:
    return node_summary(name, timeline, faults, final)


def test_the_demo_run_outage_is_not_the_heal_to_ready_time():
    """The issue's demo: cut at +8 s, NotReady +13.9 s, healed +24.4 s,
    Ready +25.4 s. The outage is 11.5 s; 1.0 s is heal to Ready."""
    node = summary(changes("agent-0", (0, "True"), (13.9, "Unknown"),
                           (25.4, "True")), [fault("p1", 8, 24.4)])
    [outage] = node["outages"]
    assert outage == {
        "not_ready_at": at(13.9), "ready_at": at(25.4),
        "outage_seconds": 11.5, "fault": "p1",
        "seconds_to_not_ready": 5.9, "seconds_to_ready_after_heal": 1.0,
        "began_before_timeline": False}
    assert node["longest_outage_seconds"] == 11.5
    assert node["recovered"] is True
    assert "recovery_seconds" not in node


def test_node_never_not_ready_has_no_outage():
    node = summary(changes("agent-0", (0, "True")), [fault("p1", 8, 20)])
    assert node == {"recovered": True, "held_down": None, "outages": [],
                    "longest_outage_seconds": None}


def test_node_not_ready_and_never_back():
    node = summary(changes("agent-0", (0, "True"), (12, "False")),
                   [fault("p1", 8, 20)], final="False")
    [outage] = node["outages"]
    assert outage["ready_at"] is None and outage["outage_seconds"] is None
    assert outage["seconds_to_not_ready"] == 4.0
    assert outage["seconds_to_ready_after_heal"] is None
    # an outage that never ended has no length to be the longest
    assert node["longest_outage_seconds"] is None
    assert node["recovered"] is False


def test_several_outages_are_all_kept_with_the_longest():
    timeline = changes("agent-0", (0, "True"), (10, "False"), (14, "True"),
                       (40, "Unknown"), (52, "True"), (60, "False"))
    node = summary(timeline, [fault("p1", 8, 13), fault("r2", 38, 50)],
                   final="True")  # Ready at the steady state, down later
    spans = [(o["not_ready_at"], o["ready_at"], o["outage_seconds"],
              o["fault"]) for o in node["outages"]]
    assert spans == [(at(10), at(14), 4.0, "p1"),
                     (at(40), at(52), 12.0, "r2"),
                     (at(60), None, None, "r2")]
    assert node["longest_outage_seconds"] == 12.0
    assert [o["seconds_to_ready_after_heal"] for o in node["outages"]] == [
        1.0, 2.0, None]
    assert node["recovered"] is True  # judged at the steady state


def test_not_ready_before_any_fault_is_an_outage_of_no_fault():
    timeline = changes("agent-0", (0, "True"), (2, "False"), (5, "True"),
                       (12, "False"), (22, "True"))
    node = summary(timeline, [fault("p1", 8, 20)])
    first, second = node["outages"]
    assert (first["fault"], first["outage_seconds"]) == (None, 3.0)
    assert first["seconds_to_not_ready"] is None
    assert first["seconds_to_ready_after_heal"] is None
    assert (second["fault"], second["seconds_to_not_ready"]) == ("p1", 4.0)
    assert node["longest_outage_seconds"] == 10.0


def test_heal_before_not_ready_counts_from_the_heal():
    """A short cut: the node goes NotReady only after the heal."""
    node = summary(changes("agent-0", (0, "True"), (15, "Unknown"),
                           (19, "True")), [fault("p1", 8, 12)])
    [outage] = node["outages"]
    assert outage["outage_seconds"] == 4.0
    assert outage["seconds_to_not_ready"] == 7.0
    assert outage["seconds_to_ready_after_heal"] == 7.0  # 12 -> 19


def test_ready_again_before_the_heal_is_negative():
    """A fixed release fails over during the cut: Ready before the heal."""
    node = summary(changes("agent-0", (0, "True"), (12, "Unknown"),
                           (18, "True")), [fault("p1", 8, 30)])
    [outage] = node["outages"]
    assert outage["seconds_to_ready_after_heal"] == -12.0
    assert outage["outage_seconds"] == 6.0


def test_a_flapping_node_counts_each_outage_and_merges_down_states():
    timeline = changes("agent-0", (0, "True"), (10, "Unknown"),
                       (11, "False"), (12, "True"), (12.5, "False"),
                       (13, "True"), (13.2, "Unknown"), (20, "True"))
    node = summary(timeline, [fault("p1", 8, 19)])
    assert [o["outage_seconds"] for o in node["outages"]] == [2.0, 0.5, 6.8]
    assert node["longest_outage_seconds"] == 6.8
    assert all(o["fault"] == "p1" for o in node["outages"])


def test_fault_with_no_end_has_no_time_after_heal():
    timeline = changes("agent-0", (0, "True"), (10, "False"), (30, "True"))
    node = summary(timeline, [fault("s1", 8, None)])
    [outage] = node["outages"]
    assert outage["outage_seconds"] == 20.0
    assert outage["seconds_to_not_ready"] == 2.0
    assert outage["seconds_to_ready_after_heal"] is None


def test_down_when_first_seen_is_flagged_and_has_no_time_to_not_ready():
    timeline = changes("agent-0", (0, "False"), (9, "True"))
    node = summary(timeline, [fault("p1", 0, 5)])
    [outage] = node["outages"]
    assert outage["began_before_timeline"] is True
    assert outage["seconds_to_not_ready"] is None
    assert outage["outage_seconds"] == 9.0  # at least: it began earlier


def test_attribution_prefers_the_fault_that_names_the_node():
    """A later fault elsewhere does not steal the node's own cut; a
    fault that names no node of ours still explains an outage."""
    own = fault("p1", 8, 30, nodes=("server-cp-0",), peers=("agent-0",))
    other = fault("s2", 9, 12, nodes=("server-etcd-0",))
    node = summary(changes("agent-0", (0, "True"), (14, "False"),
                           (32, "True")), [own, other])
    assert node["outages"][0]["fault"] == "p1"
    agent1 = summary(changes("agent-1", (0, "True"), (14, "False"),
                             (32, "True")), [own, other], name="agent-1")
    assert agent1["outages"][0]["fault"] == "s2"


def test_timeline_out_of_order_and_naive_times_are_handled():
    timeline = [{"node": "agent-0", "at": "2026-11-25T21:40:10",
                 "ready": "True"},
                {"node": "agent-0", "at": "2026-11-25T21:40:00",
                 "ready": "False"},
                {"node": "agent-0", "at": "2026-11-25T21:39:50+00:00",
                 "ready": "True"}]
    node = summary(timeline, [fault("p1", 5, 15)])
    assert [o["outage_seconds"] for o in node["outages"]] == [10.0]


def test_other_nodes_entries_are_not_mixed_in():
    timeline = changes("agent-0", (0, "True")) + changes(
        "agent-1", (0, "True"), (10, "False"))
    assert summary(timeline, [fault("p1", 8, 20)])["outages"] == []


def test_section_roles_risk_recovery_and_versions():
    nodes = {"server-etcd-0": Node("server-etcd-0", "etcd", "10.0.0.10",
                                   None),
             "server-cp-0": Node("server-cp-0", "control-plane",
                                 "10.0.0.11", "server-etcd-0"),
             "agent-0": Node("agent-0", "agent", "10.0.0.12",
                             "server-etcd-0")}
    timeline = changes("agent-0", (0, "True"), (12, "Unknown"),
                       (30, "True"))
    built = section("lab", "chaosk3s-lab", nodes, timeline,
                    [fault("p1", 8, 28)],
                    final={"agent-0": "True", "server-cp-0": "True",
                           "ghost": "False"},
                    versions=["v1.28.15+k3s1", "", "v1.28.15+k3s1"])
    assert built["k3s_versions"] == ["v1.28.15+k3s1"]
    assert built["api_reachable"] is True
    agent = built["nodes"]["agent-0"]
    assert (agent["role"], agent["at_risk"]) == ("agent", True)
    assert agent["longest_outage_seconds"] == 18.0
    assert built["nodes"]["server-cp-0"]["at_risk"] is False
    # not listed at the steady state after: not recovered
    assert built["nodes"]["server-etcd-0"]["recovered"] is False
    assert built["nodes"]["ghost"]["role"] == "unknown"
    assert (built["final_source"], built["final_error"]) == ("api", None)
    # the fresh read did not answer: the watch's view, and why
    fallback = section("lab", None, nodes, [], [], {"agent-0": "True"}, [],
                       source="watch", error="no fresh read within 5s")
    assert (fallback["api_reachable"], fallback["final_source"],
            fallback["final_error"]) == (False, "watch",
                                         "no fresh read within 5s")
    # a fresh read that lists no node answered: none recovered
    empty = section("lab", None, nodes, [], [], {}, [])
    assert empty["api_reachable"] is True
    assert not any(n["recovered"] for n in empty["nodes"].values())
    # the journal so far: the watch's view by design, no read tried
    assert section("lab", None, nodes, [], [], {}, [], source="watch"
                   )["api_reachable"] is None


def test_the_pure_part_does_not_import_the_kubernetes_client():
    """The report imports this module; the client takes 0.6 s."""
    import subprocess
    import sys
    code = ("import sys, chaosk3s.journal_section, chaosk3s.report; "
            "print('kubernetes' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "False"


def test_longest_ignores_outages_that_never_ended():
    ended = journal_section.Outage(T0, T0 + timedelta(seconds=3), None,
                                   False)
    open_ = journal_section.Outage(T0 + timedelta(seconds=5), None, None,
                                   False)
    assert journal_section.longest([ended, open_]) is ended
    assert journal_section.longest([open_]) is None
