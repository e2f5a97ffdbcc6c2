"""The variables an experiment declares, read from its configuration.

Each tunable is declared as Chaos Toolkit's environment reference,
``{"type": "env", "key": "CHAOSK3S_...", "default": ..., "description":
"..."}``: `--var NAME=VALUE` overrides it, else the environment variable,
else the default (chaoslib.configuration.load_configuration; Chaos
Toolkit ignores the extra `description`). No `env_var_type` is declared:
chaoslib casts with it before any control runs, so a bad value ends in a
Python traceback naming neither the variable nor the key, and its `bool`
cast takes anything but false/0/no as true. Values arrive as strings,
as `--var k=v` ones do, and the activities convert and check them
(chaosk3s.arguments), the control refusing bad ones by name. Their type
is the type of the default.

`chaosk3s variables EXPERIMENT...` prints the tables README shows.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosk3s.errors import SpecError

_TYPES = {bool: "boolean", int: "number", float: "number", str: "string",
          dict: "mapping", list: "list"}


@dataclass(frozen=True)
class Variable:
    name: str
    type: str
    default: Any
    environment: str | None
    meaning: str


def declared(experiment: dict) -> list[Variable]:
    """Every configuration key, in the order the experiment lists them."""
    found = []
    for name, value in (experiment.get("configuration") or {}).items():
        is_env = isinstance(value, dict) and value.get("type") == "env"
        default = value.get("default") if is_env else value
        found.append(Variable(
            name=name, type=_TYPES.get(type(default), "—"), default=default,
            environment=value.get("key") if is_env else None,
            meaning=str(value.get("description", "")) if is_env else ""))
    return found


def _default(value: Any) -> str:
    if isinstance(value, dict) and "nodes" in value:
        return f"inline spec, {len(value['nodes'])} nodes"
    return f"`{json.dumps(value)}`"


def markdown(paths: list[Path]) -> str:
    """One table per experiment: variable, type, default, environment
    variable, meaning."""
    parts = []
    for path in paths:
        try:
            experiment = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise SpecError(f"cannot read experiment {path}: {exc}"
                            ) from exc
        rows = [f"| `{v.name}` | {v.type} | {_default(v.default)} | "
                f"{f'`{v.environment}`' if v.environment else '—'} | "
                f"{v.meaning} |" for v in declared(experiment)]
        parts.append("\n".join([
            f"`{Path(path).name}`:", "",
            "| variable | type | default | environment | meaning |",
            "| --- | --- | --- | --- | --- |", *rows]))
    return "\n\n".join(parts) + "\n"


START, END = "<!-- variables: start -->", "<!-- variables: end -->"


def readme_block(readme: str, tables: str) -> str:
    """README with the text between the variables markers replaced."""
    if START not in readme or END not in readme:
        raise SpecError(f"README has no {START} ... {END} block")
    head, rest = readme.split(START, 1)
    return f"{head}{START}\n{tables}{END}{rest.split(END, 1)[1]}"
