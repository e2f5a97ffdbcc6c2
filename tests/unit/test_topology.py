"""Topology from API node objects and an inventory; node selection."""

import json

import pytest

from chaosk3s.errors import SpecError
from chaosk3s.inventory import parse_inventory
from chaosk3s.selectors import select
from chaosk3s.topology import build_topology, join_url, role_of

INVENTORY = {
    "cluster": "prod", "kubeconfig": "/tmp/kc",
    "defaults": {"transport": {"type": "ssh", "user": "ops",
                               "key_file": "/keys/id"}},
    "roles": {"agent": {"transport": {"port": 2222},
                        "commands": {"restart": "rc-service k3s restart"}}},
    "commands": {"servers": {"stop": "service k3s stop"}},
    "nodes": [{"name": "e0", "address": "10.0.0.10"},
              {"name": "a0", "role": "agent", "address": "10.0.0.20",
               "transport": {"jump": "bastion"}}],
}


def _api_node(name, ip, labels=(), server=None, env=None):
    args = ["server"] if labels else ["agent"]
    if server:
        args += ["--server", f"https://{server}:6443"]
    annotations = {"k3s.io/node-args": json.dumps(args)}
    if env:
        annotations["k3s.io/node-env"] = json.dumps(env)
    return {"metadata": {"name": name, "annotations": annotations,
                         "labels": {f"node-role.kubernetes.io/{r}": "true"
                                    for r in labels}},
            "status": {"addresses": [{"type": "InternalIP",
                                      "address": ip}]}}


NODES = [
    _api_node("e0", "10.0.0.10", ["etcd"]),
    _api_node("e1", "10.0.0.11", ["etcd"], server="10.0.0.10"),
    _api_node("c0", "10.0.0.12", ["control-plane", "master"],
              server="10.0.0.10"),
    _api_node("s0", "10.0.0.13", ["control-plane", "master", "etcd"],
              server="10.0.0.10"),
    _api_node("a0", "10.0.0.20", server="10.0.0.10"),
    _api_node("a1", "10.0.0.21", server="10.0.0.12"),
    _api_node("a2", "10.0.0.22", env={"K3S_URL": "https://10.0.0.11:6443"}),
]


def test_roles_join_servers_and_at_risk():
    topo = build_topology(NODES, parse_inventory(INVENTORY, "inv"))
    roles = {n.name: n.role for n in topo.nodes}
    assert roles == {"e0": "etcd", "e1": "etcd", "c0": "control-plane",
                     "s0": "server", "a0": "agent", "a1": "agent",
                     "a2": "agent"}
    assert topo.node("a2").join_server == "e1"  # from K3S_URL
    # c0 and s0 joined through e0 too, but use their own API server.
    assert [n.name for n in topo.at_risk()] == ["a0", "a2", "e1"]
    assert topo.node("e0").join_server is None


def test_access_merges_defaults_roles_and_node():
    inv = parse_inventory(INVENTORY, "inv")
    a0 = inv.nodes["a0"].access
    assert (a0.transport, a0.user, a0.port, a0.jump, a0.key_file) == (
        "ssh", "ops", 2222, "bastion", "/keys/id")
    assert inv.nodes["e0"].access.port == 22
    assert inv.command("agent", "restart", "a0") == "rc-service k3s restart"
    assert inv.command("etcd", "stop", "e0") == "service k3s stop"
    assert inv.command("etcd", "start", "e0") == "systemctl start k3s"
    assert inv.command("agent", "stop", "a0") == "systemctl stop k3s-agent"


@pytest.mark.parametrize("change,message", [
    ({"cluster": None}, "`cluster`"),
    ({"nodes": [{"name": "x", "role": "boss"}]},
     r"`nodes\[0\].role` must be one of .*, not 'boss'"),
    ({"defaults": {}, "nodes": [{"name": "x"}]}, "needs a transport"),
    ({"nodes": [{"name": "x", "transport": {"type": "netns"}}]},
     "needs `namespace`"),
    ({"commands": {"servers": {"explode": "x"}}},
     "`commands.servers.explode` is not a known key"),
    ({"commands": {"everyone": {}}}, "`commands.everyone` is not a known"),
])
def test_bad_inventories(change, message):
    with pytest.raises(SpecError, match=message):
        parse_inventory({**INVENTORY, **change}, "inv")


def test_inventory_naming_unknown_nodes_is_refused():
    ghost = {"name": "ghost", "address": "10.0.0.99"}
    raw = {**INVENTORY, "nodes": [*INVENTORY["nodes"], ghost]}
    with pytest.raises(SpecError, match="does not know: ghost"):
        build_topology(NODES, parse_inventory(raw, "inv"))


def test_selection_groups():
    topo = build_topology(NODES, parse_inventory(INVENTORY, "inv"))
    names = lambda g: [n.name for n in select(topo, g)]  # noqa: E731
    assert names("etcd") == ["e0", "e1"]
    assert names("at-risk,agent") == ["a0", "a1", "a2", "e1"]
    assert names("name:a1|e0") == ["a1", "e0"]
    assert len(names("all")) == 7
    assert names("all,-agent,-name:e0") == ["c0", "e1", "s0"]
    with pytest.raises(SpecError, match="unknown node group 'workers'"):
        select(topo, "workers")
    with pytest.raises(SpecError, match="matches no node"):
        select(topo, "name:nobody")


def test_selectors_without_node_names():
    topo = build_topology(NODES, parse_inventory(INVENTORY, "inv"))
    names = lambda g: [n.name for n in select(topo, g)]  # noqa: E731
    assert names("agent[0]") == ["a0"] and names("agent[-1]") == ["a2"]
    assert names("etcd[1],control-plane[0]") == ["c0", "e1"]
    assert names("at-risk[1]") == ["a2"]  # a0, a2, e1 by name
    # a0 and e1 joined through e0, a2 through e1 (K3S_URL).
    assert names("join-server:at-risk") == ["e0", "e1"]
    assert names("join-server:control-plane") == ["e0"]
    assert names("join-server:agent[1]") == ["c0"]
    assert names("all,-join-server:at-risk,-agent") == ["c0", "s0"]


@pytest.mark.parametrize("selector,message", [
    ("control-plane[1]", r"'control-plane' has 1 node\(s\) \(c0\)"),
    ("all,-agent[3]", "'agent' has 3 node"),
    ("name:a0|ghost", "no node named ghost; the cluster's nodes: a0, a1"),
    ("all,-name:ghost", "no node named ghost"),
    ("join-server:name:e0", "matches no node of the cluster"),
    ("etcd[first]", "unknown node group 'etcd\\[first\\]'"),
])
def test_selectors_that_match_nothing_or_too_little_are_refused(
        selector, message):
    """A leftover lab node name, or a cluster smaller than the experiment
    expects, is an error, never a silently smaller selection."""
    topo = build_topology(NODES, parse_inventory(INVENTORY, "inv"))
    with pytest.raises(SpecError, match=message):
        select(topo, selector)


def test_role_and_join_parsing_edge_cases():
    assert role_of({}) == "agent"
    assert role_of({"node-role.kubernetes.io/master": "true"}) == \
        "control-plane"
    with pytest.raises(ValueError, match="not JSON"):
        join_url({"k3s.io/node-args": "not json"})
    assert join_url({"k3s.io/node-args": '["server", "--server"]'}) is None


@pytest.mark.parametrize("args", ["42", "null", '{"--server": "x"}',
                                  '["--server", 7]', "not json"])
def test_a_malformed_node_args_annotation_is_reported_not_fatal(args):
    """Reproduction (issue 12): a number, null or a mapping in any node's
    k3s.io/node-args made every heal path fail in topology parsing."""
    nodes = [dict(n, metadata=dict(n["metadata"])) for n in NODES]
    nodes[4]["metadata"]["annotations"] = {"k3s.io/node-args": args}
    topo = build_topology(nodes, parse_inventory(INVENTORY, "inv"))
    a0 = topo.node("a0")
    assert a0.role == "agent" and a0.join_server is None
    assert a0.access is not None  # still reachable, so still healable
    assert len(topo.problems) == 1 and "node a0" in topo.problems[0]
    assert "k3s.io/node-args" in topo.problems[0]
    assert topo.node("e1").join_server == "e0"  # the others unaffected


def test_every_internal_address_of_a_dual_stack_node():
    node = _api_node("a0", "10.0.0.20", server="10.0.0.10")
    node["status"]["addresses"] += [
        {"type": "InternalIP", "address": "fd00::20"},
        {"type": "Hostname", "address": "a0"}]
    node["metadata"]["annotations"]["k3s.io/internal-ip"] = \
        "10.0.0.20,fd00::20"
    topo = build_topology([node, NODES[0]], parse_inventory(
        {**INVENTORY, "nodes": []}, "inv"))
    assert topo.node("a0").all_addresses == ("10.0.0.20", "fd00::20")
    assert topo.node("a0").address == "10.0.0.20"
