"""Label and field selectors, parsed once per request into a predicate."""

import re
from collections.abc import Callable

from chaosk3s.lab.k3s.apiserver_resources import bad_request

Predicate = Callable[[dict], bool]
_SET = re.compile(r"^([^\s!=()]+)\s+(in|notin)\s+\((.*)\)$")
_EQ = re.compile(r"^([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=()]*)$")
_KEY = re.compile(r"^(!?)\s*([^\s!=(),]+)$")


def _split(text: str) -> list[str]:
    """Top-level comma split: commas inside (a,b) belong to the set."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _requirement(text: str) -> Callable[[dict], bool]:
    if match := _SET.match(text):
        key, op, values = match.groups()
        wanted = {v.strip() for v in values.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in wanted
        return lambda labels: key not in labels or labels[key] not in wanted
    if match := _EQ.match(text):
        key, op, value = match.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _KEY.match(text):
        negate, key = match.groups()
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise bad_request(f"unable to parse requirement: {text!r}")


def label_selector(text: str | None) -> Predicate | None:
    if not text:
        return None
    requirements = [_requirement(part) for part in _split(text)]

    def matches(obj: dict) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(req(labels) for req in requirements)
    return matches


def _field_value(obj: dict, path: str) -> str:
    node: object = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return "" if node is None else str(node)


def field_selector(text: str | None) -> Predicate | None:
    requirements = []
    for part in _split(text or ""):
        match = _EQ.match(part)
        if not match:
            raise bad_request(f"invalid field selector: {part!r}")
        path, op, value = match.groups()
        requirements.append((path, op == "!=", value))
    if not requirements:
        return None

    def matches(obj: dict) -> bool:
        return all((_field_value(obj, path) == value) != negate
                   for path, negate, value in requirements)
    return matches


def combine(*predicates: Predicate | None) -> Predicate | None:
    active = [p for p in predicates if p is not None]
    if not active:
        return None
    return lambda obj: all(p(obj) for p in active)
