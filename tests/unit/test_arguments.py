"""Activity arguments: what users type becomes what activities take, and
every bad value of every argument of every activity is one clear line."""

import inspect

import pytest
from chaoslib.discovery.discover import discover_activities
from chaoslib.exceptions import InvalidActivity
from chaoslib.provider.python import validate_python_activity

from chaosk3s import actions, probes
from chaosk3s.arguments import (
    CHECKS_ATTRIBUTE,
    INJECTED,
    K3S_VERSION,
    LABELS,
    NODES,
    NOT_NEGATIVE,
    PORTS,
    POSITIVE,
    SOME_K3S_VERSION,
    SOME_LABELS,
    ArgumentError,
    coerce,
)

ACTIVITIES = [getattr(module, name) for module in (actions, probes)
              for name in module.__all__]
# Bad values by annotation, whatever the argument's own check.
BAD_BY_TYPE = {
    int: ["abc", "", True, [1], {"a": 1}, "1.5"],
    float: ["abc", "", True, [1], {"a": 1}, "nan", "inf"],
    bool: ["maybe", "", 2, [True], {"a": 1}, 1.5],
    str: [5, True, ["a"], {"a": 1}],
    list: [True, {"a": 1}, "[1, 2", '{"a": 1}'],
}
# Values of the right type that the argument's check refuses.
BAD_BY_CHECK = {
    id(POSITIVE): ["0", "-1", 0, -0.5],
    id(NOT_NEGATIVE): ["-1", -0.001],
    id(PORTS): ["0", "70000", "6443,x", [6443, "ssh"], [-1], "abc"],
    id(NODES): ["workers", "", ",", "-agent", "name:", "agent[x]",
                "control-plane[1", "join-server:nobody", "name:a,,oops"],
    id(LABELS): ["a in b", "=x", "a==b==c"],
    id(SOME_LABELS): ["", "  ", "a in b", "=x"],
    id(K3S_VERSION): ["", "1.31.4+k3s1", "v1.31.4", "v1.31.4+rke2r1",
                      "v1.31.4+k3s-xyz", "latest", "v1.31.4+k3s1; reboot",
                      "v1.31.4+k3s1 "],
    id(SOME_K3S_VERSION): ["v1.31", "stable", "v1.31.4+k3s1\n"],
    id(actions.PERCENT): ["-1", -0.5, 100.5, "101"],
    id(actions.DELAY): [-1, "-5", 60001],
    id(actions.RATE): ["0", "0mbit", "10 furlongs", "1xbit", "-1mbit",
                       "mbit", "1.5"],
}
# Valid values for required arguments, so the bad one is the only one.
REQUIRED = {"selector": "a=b", "peer_selector": "c=d", "nodes": "agent",
            "version": "v1.31.4+k3s1"}


def _checks(func) -> dict:
    return getattr(func, CHECKS_ATTRIBUTE)


def _bad_cases():
    for func in ACTIVITIES:
        for name, param in inspect.signature(func).parameters.items():
            if name in INJECTED:
                continue
            check = _checks(func).get(name)
            bad = list(BAD_BY_TYPE[param.annotation])
            if check is not None and check.expects.startswith("one of"):
                bad += ["sideways", "DROP", " both"]
            elif check is not None:  # a new check needs its bad values
                bad += BAD_BY_CHECK[id(check)]
            for value in bad:
                yield pytest.param(func, name, value,
                                   id=f"{func.__name__}-{name}-{value!r}")


def test_every_activity_is_decorated_and_builtin_typed():
    for func in ACTIVITIES:
        assert hasattr(func, CHECKS_ATTRIBUTE), func.__name__
        for name, param in inspect.signature(func).parameters.items():
            assert param.annotation in BAD_BY_TYPE or name in INJECTED, (
                func.__name__, name, param.annotation)


@pytest.mark.parametrize("func,name,value", list(_bad_cases()))
def test_bad_value_is_one_clear_line(func, name, value):
    arguments = {k: v for k, v in REQUIRED.items()
                 if k in inspect.signature(func).parameters}
    arguments[name] = value
    with pytest.raises(ArgumentError) as raised:
        coerce(func, arguments)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{func.__module__}.{func.__name__}: "
                              f"argument {name}={value!r} is invalid: "
                              f"expected ")
    # The activity itself refuses the same value before doing anything
    # (no target is configured: reaching one would raise another error).
    with pytest.raises(ArgumentError, match="is invalid"):
        func(**arguments)


@pytest.mark.parametrize("given,expected", [
    ({"ttl": "60", "ports": "6443", "force": "TRUE"},
     {"ttl": 60.0, "ports": [6443], "force": True}),
    ({"ttl": 2, "ports": "6443, 10250", "force": "no"},
     {"ttl": 2.0, "ports": [6443, 10250], "force": False}),
    ({"ports": "[6443, 2379]", "direction": "to", "mode": "reject"},
     {"ports": [6443, 2379], "direction": "to", "mode": "reject"}),
    ({"ports": 6443, "ttl": " 2.5 "}, {"ports": [6443], "ttl": 2.5}),
    ({"ports": None, "group": "control-plane[1],join-server:at-risk"},
     {"ports": None, "group": "control-plane[1],join-server:at-risk"}),
])
def test_strings_become_what_the_signature_asks(given, expected):
    assert coerce(actions.partition_roles, given) == expected


def test_whole_numbers_and_defaults():
    assert coerce(probes.nodes_not_ready_within, {"seconds": "20"}) == {
        "seconds": 20.0}
    args = coerce(actions.stop_k3s, {"nodes": "etcd[0]"},
                  with_defaults=True)
    assert args == {"nodes": "etcd[0]", "duration": 0, "force": False,
                    "timeout": 120, "configuration": None}


def test_missing_and_unknown_arguments_name_the_activity():
    with pytest.raises(ArgumentError, match=r"^chaosk3s\.actions\.stop_k3s"
                       r": missing a required argument: 'nodes'$"):
        coerce(actions.stop_k3s, {})
    with pytest.raises(ArgumentError, match="unexpected keyword argument "
                       "'second'"):
        coerce(probes.nodes_not_ready_within, {"second": 5})


def test_chaos_toolkit_sees_the_real_signatures():
    """Discovery, `chaos validate`'s binding and the injection of
    `configuration` all go through inspect.signature, which must see the
    function's own parameters through the decorator."""
    found = {a["name"]: a for a in discover_activities("chaosk3s.actions",
                                                       "action")}
    ports = {a["name"]: a for a in found["partition_roles"]["arguments"]}
    assert ports["ports"] == {"name": "ports", "default": None,
                              "type": "list"}
    assert ports["ttl"]["type"] == "number" and ports["ttl"]["default"] == 300
    assert found["stop_k3s"]["doc"].startswith("Stop K3s")
    assert "configuration" in inspect.signature(
        probes.all_nodes_ready).parameters

    def activity(func, **arguments):
        return {"name": "x", "type": "probe", "provider": {
            "type": "python", "module": "chaosk3s.probes", "func": func,
            "arguments": arguments}}
    validate_python_activity(activity("wait_for_nodes_ready", timeout=5))
    with pytest.raises(InvalidActivity, match="not part of the function"):
        validate_python_activity(activity("wait_for_nodes_ready", tmeout=5))
