"""Activity arguments as users pass them: one coercion place.

Chaos Toolkit hands activities what the experiment says: `--var k=60`
and environment values arrive as the string "60", a YAML var file gives
60. Every chaosk3s action and probe is wrapped by `activity`, which
reads the function's own signature (the annotations `chaos discover`
reports) and turns what it was given into what it asks for:

- int, float: numbers, or strings that spell one ("60", "2.5");
- bool: true/false, yes/no, on/off, 1/0 (any case);
- list: a list, a JSON list string, a comma-separated string, or one
  number (`ports: "6443"` is [6443], never ["6", "4", ...]);
- dict: a mapping or a JSON object string; str: a string.

Checks the signature cannot say (ports in 1-65535, durations > 0, a
direction among both/to/from, a selector that parses) are declared next
to the function: ``@activity(ttl=POSITIVE, direction=one_of(...))``.
Anything else raises ArgumentError naming the activity, the argument,
the value and what is expected, in one line. The control runs the same
checks on every activity of an experiment before anything is injected.
"""

import functools
import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaosk3s.errors import ArgumentError, SpecError
from chaosk3s.k3s_versions import FORM, is_k3s_version
from chaosk3s.selectors import parse, parse_label_selector

INJECTED = ("configuration", "secrets")  # filled in by Chaos Toolkit
CHECKS_ATTRIBUTE = "__chaosk3s_checks__"
_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n"}


@dataclass(frozen=True)
class Check:
    """A test of a value already of the annotated type: returns the value
    to use or raises ValueError; `expects` completes "expected ..."."""

    expects: str
    test: Callable[[Any], Any]


def _number(value: Any, kind: type) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError
    number = float(value.strip()) if isinstance(value, str) else value
    if not math.isfinite(number):
        raise ValueError
    if kind is int:
        if number != int(number):
            raise ValueError
        return int(number)
    return float(number)


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError


def _list(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    if not isinstance(value, str):
        raise ValueError
    text = value.strip()
    if text.startswith("["):
        parsed = json.loads(text)
        if not isinstance(parsed, list):
            raise ValueError
        return parsed
    return [part.strip() for part in text.split(",") if part.strip()]


def _dict(value: Any) -> dict:
    parsed = json.loads(value) if isinstance(value, str) else value
    if not isinstance(parsed, dict):
        raise ValueError
    return parsed


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError
    return value


_TYPES: dict[Any, tuple[Callable[[Any], Any], str]] = {
    int: (lambda v: _number(v, int), "a whole number"),
    float: (lambda v: _number(v, float), "a number"),
    bool: (to_bool, "true or false"),
    list: (_list, "a list (a JSON list or comma-separated)"),
    dict: (_dict, "a mapping (a JSON object)"),
    str: (_str, "a string"),
}


# -- checks declared next to the activities -------------------------------
def _test(predicate: Callable[[Any], bool]) -> Callable[[Any], Any]:
    def test(value):
        if not predicate(value):
            raise ValueError
        return value
    return test


POSITIVE = Check("a number greater than 0", _test(lambda v: v > 0))
NOT_NEGATIVE = Check("a number, 0 or more", _test(lambda v: v >= 0))


def one_of(*choices: str) -> Check:
    return Check(f"one of: {', '.join(choices)}",
                 _test(lambda value: value in choices))


def _ports(value: list) -> list:
    ports = []
    for item in value:
        try:
            port = _number(item, int)
        except (ValueError, TypeError):
            port = 0
        if not 1 <= port <= 65535:
            raise ValueError(f"{item!r} is not a port")
        ports.append(port)
    return ports


def _parses(parser: Callable[[str], Any]) -> Callable[[str], str]:
    def test(value: str) -> str:
        try:
            parser(value)
        except SpecError as exc:  # its message says what is wrong
            raise ValueError(str(exc)) from None
        return value
    return test


def _label_selector(required: bool) -> Callable[[str], Any]:
    def parser(text: str) -> Any:
        if required and not text.strip():
            raise SpecError("it is empty, which would select every node")
        return parse_label_selector(text)
    return parser


PORTS = Check("TCP ports from 1 to 65535 (a list or comma-separated)",
              _ports)
NODES = Check("a node selector", _parses(parse))
LABELS = Check("a Kubernetes label selector",
               _parses(_label_selector(required=False)))
SOME_LABELS = Check("a Kubernetes label selector",
                    _parses(_label_selector(required=True)))
K3S_VERSION = Check(f"a K3s version, {FORM}",
                    _test(lambda v: is_k3s_version(v)))
SOME_K3S_VERSION = Check(f"empty or any, or a K3s version, {FORM}",
                         _test(lambda v: v in ("", "any") or
                               is_k3s_version(v)))


# -- coercion ---------------------------------------------------------------
def activity_name(func: Callable) -> str:
    return f"{func.__module__}.{func.__name__}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def convert(name: str, param: inspect.Parameter, value: Any,
            check: Check | None) -> Any:
    """One argument as its parameter asks for it; ArgumentError if not."""
    if value is None and param.default is None:
        return None  # "not given", as the signature's own default says
    to_type, what = _TYPES.get(param.annotation, (lambda v: v, "a value"))
    expects = check.expects if check else what
    try:
        converted = to_type(value)
    except (ValueError, TypeError):
        raise _invalid(name, param, value, expects) from None
    if check is None:
        return converted
    try:
        return check.test(converted)
    except (ValueError, TypeError) as exc:
        raise _invalid(name, param, value, expects, str(exc)) from None


def _invalid(name: str, param: inspect.Parameter, value: Any,
             expects: str, detail: str = "") -> ArgumentError:
    return ArgumentError(
        f"{name}: argument {param.name}={_shown(value)} is invalid: "
        f"expected {expects}{': ' + detail if detail else ''}", param.name)


def _checked(func: Callable, checks: dict[str, Check],
             bound: inspect.BoundArguments) -> dict:
    name = activity_name(func)
    return {key: value if key in INJECTED else convert(
                name, bound.signature.parameters[key], value,
                checks.get(key))
            for key, value in bound.arguments.items()}


def coerce(func: Callable, arguments: dict,
           with_defaults: bool = False) -> dict:
    """The arguments a decorated activity runs with, given the ones an
    experiment passes (after substitution); ArgumentError if any is
    missing, unknown or invalid. Checks nothing on undecorated ones."""
    signature = inspect.signature(func)
    try:
        bound = signature.bind(**arguments)
    except TypeError as exc:  # unknown or missing, as chaos validate says
        raise ArgumentError(f"{activity_name(func)}: {exc}") from None
    checked = _checked(func, getattr(func, CHECKS_ATTRIBUTE, {}), bound)
    if with_defaults:
        return {**{k: p.default for k, p in signature.parameters.items()
                   if p.default is not inspect.Parameter.empty}, **checked}
    return checked


def activity(**checks: Check) -> Callable[[Callable], Callable]:
    """Make a function a chaosk3s activity: its arguments are converted
    to its annotations and checked with `checks` before it runs.

    functools.wraps keeps `inspect.signature` (which follows
    __wrapped__) on the real parameters and annotations, so discovery,
    `chaos validate`'s binding and the injection of `configuration` and
    `secrets` see the function itself."""
    def decorate(func: Callable) -> Callable:
        signature = inspect.signature(func)
        unknown = sorted(set(checks) - set(signature.parameters))
        if unknown:
            raise TypeError(f"{activity_name(func)} has no argument "
                            f"{', '.join(unknown)} to check")

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise ArgumentError(f"{activity_name(func)}: {exc}") \
                    from None
            return func(**_checked(func, checks, bound))

        setattr(wrapper, CHECKS_ATTRIBUTE, checks)
        return wrapper
    return decorate
