"""Label and field selectors, parsed once per request into a predicate."""

from collections.abc import Callable

from chaosk3s.lab.k3s.apiserver.resources import bad_request
from chaosk3s.selectors import parse_requirement, split_requirements

Predicate = Callable[[dict], bool]


def _parsed(text: str) -> tuple[str, str, tuple[str, ...]]:
    try:
        return parse_requirement(text)
    except ValueError as exc:
        raise bad_request(str(exc)) from None


def _requirement(text: str) -> Callable[[dict], bool]:
    key, op, values = _parsed(text)
    wanted = set(values)
    if op == "in":
        return lambda labels: labels.get(key) in wanted
    if op == "notin":
        return lambda labels: key not in labels or labels[key] not in wanted
    if op == "!=":
        return lambda labels: labels.get(key) not in wanted
    if op in ("=", "=="):
        return lambda labels: labels.get(key) in wanted
    if op == "!exists":
        return lambda labels: key not in labels
    return lambda labels: key in labels


def label_selector(text: str | None) -> Predicate | None:
    if not text:
        return None
    requirements = [_requirement(part) for part in split_requirements(text)]

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
    for part in split_requirements(text or ""):
        path, op, values = _parsed(part)
        if op not in ("=", "==", "!="):
            raise bad_request(f"invalid field selector: {part!r}")
        requirements.append((path, op == "!=", values[0]))
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
