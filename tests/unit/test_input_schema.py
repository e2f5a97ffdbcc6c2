"""Inventories and game-day plans checked against their schema: one line
per error, every error at once, and nothing but a SpecError whatever the
file holds (property-based: hypothesis mutates valid files at random)."""

import copy
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaosk3s.errors import SpecError
from chaosk3s.gameday.plan import parse_plan
from chaosk3s.inventory import Inventory, parse_inventory

CHAOSK3S = Path(sys.executable).parent / "chaosk3s"
INVENTORY = {
    "cluster": "prod", "kubeconfig": "/tmp/kc", "contexts": ["prod"],
    "allowed_clusters": ["prod"],
    "defaults": {"transport": {"type": "ssh", "user": "ops",
                               "key_file": "/keys/id",
                               "options": {"ConnectTimeout": 5}}},
    "roles": {"agent": {"transport": {"port": 2222},
                        "commands": {"restart": "rc-service k3s restart"}},
              "control-plane": {"commands": {"stop": "service k3s stop"}}},
    "commands": {"servers": {"stop": "service k3s stop"}},
    "nodes": [{"name": "e0", "role": "etcd", "address": "10.0.0.10"},
              {"name": "a0", "role": "agent", "address": "10.0.0.20",
               "transport": {"jump": "bastion"}}],
}


def _inventory(**change) -> dict:
    raw = copy.deepcopy(INVENTORY)
    raw.update(change)
    return raw


def _node_transport(**transport) -> dict:
    return _inventory(nodes=[{"name": "e0", "address": "10.0.0.10",
                              "transport": transport}])


# The review's findings, each one line naming the field (issue 13).
ISSUE_13 = [
    (_inventory(defaults=None), "`defaults` must be a mapping, not null "
                                "(give it a value or leave the key out)"),
    (_inventory(roles=["agent"]), "`roles` must be a mapping, not a list"),
    (_inventory(nodes=[{"name": "e0", "transport": "ssh"}]),
     "`nodes[0].transport` must be a mapping, not 'ssh'"),
    (_node_transport(port="abc"),
     "`nodes[0].transport.port` must be a whole number, not 'abc'"),
    (_inventory(allowed_clusters="prod"),
     "`allowed_clusters` must be a list, not 'prod' (a list of one is "
     "written [prod])"),
    (_node_transport(port=0),
     "`nodes[0].transport.port` must be at least 1, not 0"),
    (_node_transport(port=99999),
     "`nodes[0].transport.port` must be at most 65535, not 99999"),
]


@pytest.mark.parametrize(("raw", "line"), ISSUE_13,
                         ids=[line.split("`")[1] + "-" +
                              line.split("not ")[1].split()[0]
                              for _, line in ISSUE_13])
def test_each_malformed_field_is_one_line_naming_it(raw, line):
    with pytest.raises(SpecError) as caught:
        parse_inventory(raw, "inv.yaml")
    assert str(caught.value) == f"inventory inv.yaml: {line}"


def test_every_error_is_reported_at_once_one_line_each():
    raw = _inventory(defaults=None, allowed_clusters="prod",
                     nodes=[{"name": "e0", "transport": {"prot": 22}},
                            {"name": "e0", "role": "boss"}])
    with pytest.raises(SpecError) as caught:
        parse_inventory(raw, "inv.yaml")
    lines = str(caught.value).splitlines()
    assert lines == [
        "inventory inv.yaml: `allowed_clusters` must be a list, not 'prod' "
        "(a list of one is written [prod])",
        "inventory inv.yaml: `defaults` must be a mapping, not null (give "
        "it a value or leave the key out)",
        "inventory inv.yaml: `nodes[0].transport.prot` is not a known key "
        "(did you mean port?); the keys here: become, host, "
        "host_key_checking, jump, key_file, known_hosts, namespace, "
        "options, port, type, user",
        "inventory inv.yaml: `nodes[1].role` must be one of 'etcd', "
        "'control-plane', 'server' or 'agent', not 'boss'"]


def test_a_valid_inventory_keeps_its_meaning():
    inventory = parse_inventory(INVENTORY, "inv.yaml")
    a0 = inventory.nodes["a0"].access
    assert (a0.user, a0.port, a0.jump, a0.options) == (
        "ops", 2222, "bastion", (("ConnectTimeout", "5"),))
    assert inventory.allowed_clusters == ("prod",)
    assert inventory.command("control-plane", "stop", "c0") == \
        "service k3s stop"
    assert inventory.command("agent", "restart", "a0") == \
        "rc-service k3s restart"


def test_node_names_are_kubernetes_names_on_one_line():
    raw = _inventory(nodes=[{"name": "e0\n", "address": "10.0.0.10"}])
    with pytest.raises(SpecError) as caught:
        parse_inventory(raw, "inv.yaml")
    assert str(caught.value) == (
        "inventory inv.yaml: `nodes[0].name` 'e0\\n' is not a valid "
        "Kubernetes node name (lower-case letters, digits, '-' and '.', at "
        "most 253 characters); it is not put into any command")


@pytest.mark.parametrize("ssh", [False, True])
def test_the_labs_own_inventory_passes_the_schema(tmp_path, monkeypatch,
                                                  ssh):
    """What `lab up` writes (a cluster-init node's join_server is null)."""
    from chaosk3s.lab.access import inventory
    from chaosk3s.lab.spec import load_spec
    from chaosk3s.lab.ssh import SshLayout
    from chaosk3s.lab.state import LabState
    monkeypatch.setenv("CHAOSK3S_STATE_DIR", str(tmp_path))
    state, spec = LabState(), load_spec(None, None)
    written = yaml.safe_dump(inventory(state, dataclasses.replace(
        spec, ssh=ssh), SshLayout(tmp_path / "ssh")))
    parsed = parse_inventory(yaml.safe_load(written), "lab")
    assert len(parsed.nodes) == len(spec.nodes)
    assert {n.access.transport for n in parsed.nodes.values()} == {
        "ssh" if ssh else "netns"}


def test_names_listed_twice_are_refused():
    raw = _inventory(nodes=[{"name": "e0", "address": "10.0.0.10"}] * 2)
    with pytest.raises(SpecError, match="node 'e0' is listed twice"):
        parse_inventory(raw, "inv.yaml")


# -- the command line -------------------------------------------------------
def test_chaosk3s_plan_prints_one_line_per_error_and_no_traceback(tmp_path):
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(yaml.safe_dump(_inventory(
        defaults=None, allowed_clusters="prod")))
    experiment = Path(__file__).parents[2] / "experiments" / \
        "etcd_only_partition.json"
    done = subprocess.run(
        [str(CHAOSK3S), "plan", str(experiment), "--var",
         f"target={inventory}"], capture_output=True, text=True,
        timeout=120, check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines()
              if str(inventory) in line]
    assert len(errors) == 2, done.stderr
    assert "`allowed_clusters` must be a list" in errors[0]
    assert "`defaults` must be a mapping, not null" in errors[1]


# -- game-day plans -----------------------------------------------------------
@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("plan")
    (work / "e.json").write_text(json.dumps(
        {"title": "t", "method": [], "configuration": {"depth": 1}}))
    (work / "inv.yaml").write_text(yaml.safe_dump(INVENTORY))
    return work


PLAN = {"name": "gd", "target": "inv.yaml",
        "experiments": [{"path": "e.json", "vars": {"depth": 2}}, "e.json"],
        "schedule": {"cron": "0 10 * * 2", "timezone": "UTC",
                     "catch_up_minutes": 30},
        "windows": [{"days": ["mon", "tue"], "hours": "09:00-17:00"}],
        "stop_on_deviation": False, "report_dir": "reports",
        "retention": {"keep_runs": 3, "keep_days": 30},
        "webhooks": {"start": "http://127.0.0.1:1/x"}}


@pytest.mark.parametrize(("change", "line"), [
    ({"retention": {"keep_days": 1e10}},
     "`retention.keep_days` must be at most 36500, not 10000000000.0"),
    ({"retention": {"keep_days": float("inf")}},
     "`retention.keep_days` must be a finite number, not inf"),
    ({"schedule": {"cron": "0 10 * * 2", "timezone": "UTC",
                   "catch_up_minutes": 10**12}},
     "`schedule.catch_up_minutes` must be at most 10080, not "
     "1000000000000"),
    ({"stop_on_deviation": "yes"},
     "`stop_on_deviation` must be true or false, not 'yes'"),
    ({"target": "missing.yaml"}, "`target` is neither `lab` nor an "
                                  "inventory file"),
    # `$` in a regular expression lets a trailing line break through
    ({"name": "gd\n"}, "`name` 'gd\\n' must be lower-case letters"),
    ({"windows": [{"hours": "09:00-17:00\n"}]}, "`windows[0].hours` "
                                                "'09:00-17:00\\n' must be"),
])
def test_plan_errors_are_one_line(plan_dir, change, line):
    with pytest.raises(SpecError) as caught:
        parse_plan({**PLAN, **change}, plan_dir / "plan.yaml")
    assert str(caught.value).startswith(
        f"game-day plan {plan_dir / 'plan.yaml'}: {line}")
    assert len(str(caught.value).splitlines()) == 1


def test_a_plan_whose_inventory_is_malformed_is_refused_at_load(plan_dir):
    (plan_dir / "bad-inv.yaml").write_text("cluster: c\ndefaults:\n")
    with pytest.raises(SpecError) as caught:
        parse_plan({**PLAN, "target": "bad-inv.yaml"},
                   plan_dir / "plan.yaml")
    assert "`target` inventory" in str(caught.value)
    assert "`defaults` must be a mapping, not null" in str(caught.value)


def test_gameday_with_overflowing_retention_runs_nothing(tmp_path):
    """keep_days: 1e10 used to overflow after the experiments had run;
    now the game day is refused before anything runs or is written."""
    (tmp_path / "e.json").write_text(json.dumps(
        {"title": "t", "method": [], "configuration": {}}))
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        **PLAN, "target": "lab", "experiments": ["e.json"],
        "retention": {"keep_days": 1e10}}))
    before = sorted(p.name for p in tmp_path.iterdir())
    done = subprocess.run([str(CHAOSK3S), "gameday", "run", str(plan)],
                          capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "`retention.keep_days` must be at most 36500" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# -- property-based: whatever the file holds, a SpecError or a result --------
JUNK = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) |
    st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) |
    st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=10)


def _places(doc, path=()):
    """Every (path) in a nested document, containers included."""
    yield path
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _places(value, (*path, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _places(value, (*path, index))


def _at(doc, path):
    for part in path:
        doc = doc[part]
    return doc


@st.composite
def mutated(draw, base: dict) -> object:
    """base with one to three places replaced, removed or given an extra
    key, by junk or by another place's value (a string where a number
    was, a list where a mapping was...)."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        places = list(_places(doc))
        path = draw(st.sampled_from(places))
        value = draw(JUNK | st.sampled_from(
            [copy.deepcopy(_at(doc, p)) for p in places]))
        if not path:
            return value
        parent, key = _at(doc, path[:-1]), path[-1]
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "remove":
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = value
        else:
            parent[key] = value
    return doc


# CHAOSK3S_EXAMPLES=5000 for a longer hunt than the unit tier's
SETTINGS = settings(
    max_examples=int(os.environ.get("CHAOSK3S_EXAMPLES", 300)),
    deadline=None, suppress_health_check=[
        HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _one_line_each(exc: SpecError, what: str) -> None:
    for line in str(exc).splitlines():
        assert line.startswith(what), line


@SETTINGS
@given(mutated(INVENTORY))
def test_any_inventory_is_an_inventory_or_a_spec_error(raw):
    try:
        inventory = parse_inventory(raw, "inv.yaml")
    except SpecError as exc:
        _one_line_each(exc, "inventory inv.yaml")
        return
    assert isinstance(inventory, Inventory)
    for entry in inventory.nodes.values():
        assert isinstance(entry.name, str) and entry.name
        assert 1 <= entry.access.port <= 65535
        assert all(isinstance(v, str) for _, v in entry.access.options)



@SETTINGS
@given(mutated(PLAN))
def test_any_plan_is_a_plan_or_a_spec_error(plan_dir, raw):
    before = sorted(p.name for p in plan_dir.iterdir())
    try:
        plan = parse_plan(raw, plan_dir / "plan.yaml")
    except SpecError as exc:
        _one_line_each(exc, f"game-day plan {plan_dir / 'plan.yaml'}")
    else:
        assert plan.experiments and plan.schedule.zone
        if plan.retention.keep_days is not None:
            assert plan.retention.keep_days <= 36500
    assert sorted(p.name for p in plan_dir.iterdir()) == before
