"""Input files checked against a schema: one clear line per error.

The inventory and the game-day plan are described by pydantic models
(chaosk3s.inventory_schema, chaosk3s.gameday.plan_schema) in strict mode:
YAML already types its values, so `port: abc`, `transport: ssh` (a string
where a mapping belongs) or `allowed_clusters: prod` (a string where a
list belongs) are errors, never converted. Fields default to None, which
means "not given"; an explicit `null` is refused like any other wrong
type (`defaults: null` is almost always a section whose keys were
commented out). Every error of a file is reported at once, one line each:

    inventory inv.yaml: `nodes[1].transport.port` must be at most 65535,
    not 99999

Activity arguments are not checked here: chaosk3s.arguments converts
what Chaos Toolkit passes (text from `--var`) and checks it.
"""

import difflib
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chaosk3s.errors import SpecError

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-]+")
NonEmpty = Annotated[str, Field(min_length=1)]
Port = Annotated[int, Field(ge=1, le=65535)]


class Strict(BaseModel):
    """A section of an input file: known keys only, no conversions."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True,
                              allow_inf_nan=False)


_EXPECTS = {
    "int_type": "a whole number", "int_parsing": "a whole number",
    "int_from_float": "a whole number", "float_type": "a number",
    "float_parsing": "a number", "string_type": "a string",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "dict_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping", "list_type": "a list",
    "tuple_type": "a list", "finite_number": "a finite number",
}


def shown(value: Any) -> str:
    """A value as the user wrote it, in YAML's words, kept short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def one_line(text: object) -> str:
    """text as is, or quoted when it holds a character that would break
    a line (an error is one line, whatever the user typed)."""
    text = str(text)
    return text if text.isprintable() else repr(text)


def where(loc: tuple) -> str:
    """('nodes', 1, 'transport', 'port') -> nodes[1].transport.port"""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:  # a key as typed; one a line break could split, quoted
            key = str(part)
            shown_key = key if _PLAIN_KEY.fullmatch(key) else repr(key)
            text += f"{'.' if text else ''}{shown_key}"
    return text


def _problem(error: dict, model: type[BaseModel]) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error["input"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        known = known_keys(model, error["loc"][:-1])
        close = difflib.get_close_matches(str(error["loc"][-1]), known, 1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"is not a known key{hint}; the keys here: " \
               f"{', '.join(known)}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}, not {shown(value)}"
    if kind in ("greater_than_equal", "greater_than"):
        word = "at least" if kind == "greater_than_equal" else "above"
        return f"must be {word} {_bound(ctx.get('ge', ctx.get('gt')))}, " \
               f"not {shown(value)}"
    if kind in ("less_than_equal", "less_than"):
        word = "at most" if kind == "less_than_equal" else "below"
        return f"must be {word} {_bound(ctx.get('le', ctx.get('lt')))}, " \
               f"not {shown(value)}"
    if kind in ("string_too_short", "too_short"):
        return "must not be empty"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", error["msg"]))
    if kind in _EXPECTS:
        return _expected(_EXPECTS[kind], value)
    return f"{error['msg'][0].lower()}{error['msg'][1:]} " \
           f"(got {shown(value)})"


def _bound(number: Any) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


def _expected(expects: str, value: Any) -> str:
    hint = ""
    if expects == "a list" and isinstance(value, str) and \
            _PLAIN_KEY.fullmatch(value):
        hint = f" (a list of one is written [{value}])"
    elif expects == "a string" and isinstance(value, (int, float)):
        hint = " (quote it)"
    elif value is None:
        hint = " (give it a value or leave the key out)"
    return f"must be {expects}, not {shown(value)}{hint}"


def error_lines(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    lines = []
    for error in exc.errors(include_url=False):
        field = where(tuple(p for p in error["loc"]
                            if not _is_branch_label(p)))
        problem = _problem(error, model)
        if field:
            lines.append(f"`{field}` {problem}")
        else:  # the whole file, or a rule across its keys
            lines.append(f"the file {problem}" if error["type"] in
                         _EXPECTS else problem)
    return list(dict.fromkeys(lines))


def _is_branch_label(part: Any) -> bool:
    """pydantic names the union member or validator it tried in loc
    (`function-after[...]`, `str`); users never wrote those."""
    return isinstance(part, str) and ("[" in part or part in (
        "str", "int", "float", "bool"))


def load_yaml(path: Path, what: str) -> object:
    """The YAML document at path; SpecError in one line if it cannot be
    read, is not UTF-8 text or is not YAML (cause chained)."""
    try:
        return yaml.safe_load(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise SpecError(f"cannot read {what}: {exc.strerror or exc}"
                        ) from exc
    except UnicodeDecodeError as exc:
        raise SpecError(f"{what} is not UTF-8 text (byte {exc.start})"
                        ) from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{what} is not valid YAML: {_yaml_problem(exc)}"
                        ) from exc
    except RecursionError as exc:
        raise SpecError(f"{what} is nested too deeply to read") from exc


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def validate(model: type[BaseModel], raw: object, what: str) -> Any:
    """raw as a model, or SpecError with one line per problem, each
    starting with `what` (e.g. "inventory /etc/chaosk3s/prod.yaml")."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise SpecError("\n".join(
            f"{what}: {line}" for line in error_lines(exc, model))
        ) from exc


# -- the model's own keys, for "did you mean" ------------------------------
def known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys a mapping at loc may have (empty if not a model)."""
    current: Any = model
    for part in loc:
        current = _step(_unwrap(current), part)
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(f.alias or name
                      for name, f in current.model_fields.items())
    return []


def _unwrap(annotation: Any) -> Any:
    """Annotated[X, ...] -> X; X | None -> X; other unions: the model."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation)
                   if a is not type(None)]
        models = [a for a in members if isinstance(a, type) and
                  issubclass(a, BaseModel)]
        return _unwrap((models or members)[0])
    return annotation


def _step(current: Any, part: Any) -> Any:
    if isinstance(current, type) and issubclass(current, BaseModel):
        for name, field in current.model_fields.items():
            if str(part) in (name, field.alias):
                return field.annotation
        return None
    args = typing.get_args(current)
    origin = typing.get_origin(current)
    if origin in (list, tuple) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None
