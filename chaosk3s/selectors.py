"""Node selectors: which nodes an activity acts on, without naming them.

A selector is a comma-separated list of terms; a term written `-TERM`
removes its nodes from the others (`all,-control-plane[1]`):

- `all`, `at-risk` (nodes that joined through an etcd-only server), or a
  role: `etcd`, `control-plane`, `server`, `agent`;
- `name:NODE[|NODE...]`: these nodes; each must exist;
- `TERM[N]`: the N-th node of TERM ordered by name (0 is the first, -1
  the last), e.g. `control-plane[1]`;
- `join-server:TERM`: the join servers of TERM's nodes (the `--server`
  they were started with), e.g. `join-server:at-risk` is the etcd-only
  server the at-risk nodes joined through.

Selectors are parsed before anything runs (`parse`), so a misspelt one is
refused up front; `select` then resolves one against the live topology.
Label selectors (`partition_nodes`) are checked here too.
"""

import re
from dataclasses import dataclass

from chaosk3s.errors import SpecError
from chaosk3s.model import ROLES, Node, Topology

AT_RISK = "at-risk"
JOIN_SERVER = "join-server:"
_INDEX = re.compile(r"^(?P<base>.+)\[(?P<index>-?\d+)\]$")
GRAMMAR = (f"a role ({', '.join(ROLES)}), '{AT_RISK}', 'all', "
           f"'name:NODE[|NODE...]', 'TERM[N]' or '{JOIN_SERVER}TERM'")


@dataclass(frozen=True)
class Term:
    text: str
    kind: str  # all | at-risk | role | name | index | join-server
    names: tuple[str, ...] = ()  # name: the nodes; role: the role
    inner: "Term | None" = None  # index and join-server: what they take
    index: int = 0


def parse_term(text: str) -> Term:
    text = text.strip()
    if text.startswith(JOIN_SERVER):
        return Term(text, "join-server",
                    inner=parse_term(text[len(JOIN_SERVER):]))
    if text.startswith("name:"):
        names = tuple(n.strip() for n in text[5:].split("|") if n.strip())
        if not names:
            raise SpecError(f"node group {text!r} names no node; write "
                            f"name:NODE[|NODE...]")
        return Term(text, "name", names=names)
    if match := _INDEX.match(text):
        return Term(text, "index", inner=parse_term(match["base"]),
                    index=int(match["index"]))
    if text in ("all", AT_RISK):
        return Term(text, text)
    if text in ROLES:
        return Term(text, "role", names=(text,))
    raise SpecError(f"unknown node group {text!r}; use {GRAMMAR}")


def parse(selector: str) -> tuple[list[Term], list[Term]]:
    """The terms that add nodes and those that remove them; SpecError if
    any term does not parse or nothing is added."""
    terms = [t.strip() for t in selector.split(",") if t.strip()]
    added = [parse_term(t) for t in terms if not t.startswith("-")]
    removed = [parse_term(t[1:]) for t in terms if t.startswith("-")]
    if not added:
        raise SpecError(f"node selection {selector!r} adds no node; start "
                        f"with {GRAMMAR}")
    return added, removed


def resolve(topology: Topology, term: Term) -> list[Node]:
    """The term's nodes, ordered by name."""
    by_name = {n.name: n for n in topology.nodes}
    if term.kind == "name":
        unknown = [n for n in term.names if n not in by_name]
        if unknown:
            raise SpecError(
                f"node group {term.text!r} matches no node named "
                f"{', '.join(unknown)}; the cluster's nodes: "
                f"{', '.join(sorted(by_name))}; nothing was changed")
        return sorted((by_name[n] for n in set(term.names)),
                      key=lambda n: n.name)
    if term.kind == "index":
        return [_nth(topology, term)]
    if term.kind == "join-server":
        joins = {n.join_server for n in resolve(topology, term.inner)}
        return [by_name[n] for n in sorted(joins) if n in by_name]
    if term.kind == "all":
        nodes = topology.nodes
    elif term.kind == AT_RISK:
        nodes = topology.at_risk()
    else:
        nodes = topology.with_role(*term.names)
    return sorted(nodes, key=lambda n: n.name)


def _nth(topology: Topology, term: Term) -> Node:
    nodes = resolve(topology, term.inner)
    if not -len(nodes) <= term.index < len(nodes):
        raise SpecError(
            f"node group {term.text!r} matches no node: "
            f"{term.inner.text!r} has {len(nodes)} node(s) "
            f"({', '.join(n.name for n in nodes) or 'none'}); nothing was "
            f"changed")
    return nodes[term.index]


def select(topology: Topology, selector: str) -> list[Node]:
    """The selected nodes, ordered by name; SpecError naming the
    selection and the cluster's nodes if it matches none."""
    added, removed = parse(selector)
    chosen = {n.name: n for term in added for n in resolve(topology, term)}
    for term in removed:
        for node in resolve(topology, term):
            chosen.pop(node.name, None)
    if not chosen:
        raise SpecError(
            f"node selection {selector!r} matches no node of the cluster "
            f"({', '.join(n.name for n in topology.nodes)}); nothing was "
            f"changed")
    return sorted(chosen.values(), key=lambda n: n.name)


# -- Kubernetes label selectors (kubectl's syntax) -----------------------
_SET = re.compile(r"^([^\s!=()]+)\s+(in|notin)\s+\((.*)\)$")
_EQ = re.compile(r"^([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=()]*)$")
_KEY = re.compile(r"^(!?)\s*([^\s!=(),]+)$")


def split_requirements(text: str) -> list[str]:
    """Top-level comma split: commas inside (a,b) belong to the set."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_requirement(text: str) -> tuple[str, str, tuple[str, ...]]:
    """(key, operator, values) of one requirement: operators in, notin,
    =, ==, !=, exists (`key`) and !exists (`!key`); ValueError if it
    does not parse."""
    if match := _SET.match(text):
        key, op, values = match.groups()
        return key, op, tuple(v.strip() for v in values.split(",")
                              if v.strip())
    if match := _EQ.match(text):
        key, op, value = match.groups()
        return key, op, (value,)
    if match := _KEY.match(text):
        negate, key = match.groups()
        return key, "!exists" if negate else "exists", ()
    raise ValueError(f"unable to parse requirement: {text!r}")


def parse_label_selector(text: str) -> list[tuple[str, str, tuple]]:
    """Every requirement of a label selector; SpecError if one does not
    parse (the API server would refuse the listing)."""
    try:
        return [parse_requirement(p) for p in split_requirements(text)]
    except ValueError as exc:
        raise SpecError(f"label selector {text!r}: {exc}") from exc
