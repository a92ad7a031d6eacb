"""Every list field declares how long it can be (`@listSize`), so the router's cost estimate
(router/cost.ts) never has to guess: a bound of the domain (`assumedSize`), or a page argument
(`slicingArguments`, sizing the list itself or, through `sizedFields`, a connection's `edges`).
Checked on each subgraph's schema built from code and on the committed supergraph the router loads."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from graphql import parse
from graphql.language import (
    DirectiveNode,
    DocumentNode,
    FieldDefinitionNode,
    IntValueNode,
    ListTypeNode,
    ListValueNode,
    NamedTypeNode,
    NonNullTypeNode,
    StringValueNode,
    TypeNode,
)

from beep.supergraph import subgraph_sdls

SUPERGRAPH = Path(__file__).resolve().parents[2] / "supergraph" / "supergraph.graphql"
# Federation's own entry point: the router calls it with the representations it holds, never a client.
EXEMPT = {"Query._entities"}
LIST_SIZE = {"listSize", "cost__listSize", "federation__listSize"}


@dataclass
class Bound:
    assumed_size: int | None = None
    slicing: list[str] = field(default_factory=list)
    sized_fields: list[str] = field(default_factory=list)


@dataclass
class Field:
    owner: str
    node: FieldDefinitionNode
    bound: Bound | None


def is_list(node: TypeNode) -> bool:
    return isinstance(node.type if isinstance(node, NonNullTypeNode) else node, ListTypeNode)


def named(node: TypeNode) -> str:
    while not isinstance(node, NamedTypeNode):
        node = node.type  # type: ignore[attr-defined]
    return node.name.value


def bound_of(directives: tuple[DirectiveNode, ...] | None) -> Bound | None:
    for directive in directives or ():
        if directive.name.value not in LIST_SIZE:
            continue
        found = Bound()
        for arg in directive.arguments or ():
            value = arg.value
            if arg.name.value == "assumedSize" and isinstance(value, IntValueNode):
                found.assumed_size = int(value.value)
            elif isinstance(value, ListValueNode):
                names = [v.value for v in value.values if isinstance(v, StringValueNode)]
                if arg.name.value == "slicingArguments":
                    found.slicing = names
                elif arg.name.value == "sizedFields":
                    found.sized_fields = names
        return found
    return None


def fields_of(document: DocumentNode) -> dict[str, list[Field]]:
    by_type: dict[str, list[Field]] = defaultdict(list)
    for definition in document.definitions:
        if definition.kind not in (
            "object_type_definition",
            "object_type_extension",
            "interface_type_definition",
            "interface_type_extension",
        ):
            continue
        owner = definition.name.value  # type: ignore[attr-defined]
        for node in definition.fields or ():  # type: ignore[attr-defined]
            by_type[owner].append(Field(owner, node, bound_of(node.directives)))
    return by_type


def unbounded(document: DocumentNode) -> list[str]:
    """`Type.field: reason` for each list field without a usable bound."""
    by_type = fields_of(document)
    problems: list[str] = []
    # A connection's list is sized by every field that returns the connection.
    sizers: dict[str, list[tuple[str, Bound | None]]] = defaultdict(list)
    for fields in by_type.values():
        for f in fields:
            sizers[named(f.node.type)].append((f"{f.owner}.{f.node.name.value}", f.bound))
    for owner, fields in by_type.items():
        for f in fields:
            key = f"{owner}.{f.node.name.value}"
            if key in EXEMPT or f.node.name.value.startswith("__"):
                continue
            if f.bound is not None:
                problems += [f"{key}: {p}" for p in usable(f, by_type)]
                continue
            if not is_list(f.node.type):
                continue
            returning = sizers.get(owner, [])
            sized = [name for name, b in returning if b is not None and f.node.name.value in b.sized_fields]
            if not returning or len(sized) != len(returning):
                missing = [name for name, b in returning if name not in sized]
                problems.append(
                    f"{key}: no @listSize (nor sizedFields on {missing or 'a field returning it'})"
                )
    return problems


def usable(f: Field, by_type: dict[str, list[Field]]) -> list[str]:
    bound = f.bound
    assert bound is not None
    problems = []
    if bound.assumed_size is not None and bound.assumed_size < 1:
        problems.append("assumedSize must be at least 1")
    arguments = {a.name.value: a for a in f.node.arguments or ()}
    for name in bound.slicing:
        arg = arguments.get(name)
        if arg is None or named(arg.type) != "Int":
            problems.append(f"slicing argument {name!r} is not an Int argument")
        elif not isinstance(arg.default_value, IntValueNode) and bound.assumed_size is None:
            problems.append(f"slicing argument {name!r} has no default and the field no assumedSize")
    if not bound.slicing and bound.assumed_size is None:
        problems.append("@listSize without assumedSize or slicingArguments")
    if not bound.sized_fields and not is_list(f.node.type):
        problems.append("@listSize on a field that is not a list, without sizedFields")
    children = {c.node.name.value: c for c in by_type.get(named(f.node.type), [])}
    for name in bound.sized_fields:
        child = children.get(name)
        if child is None or not is_list(child.node.type):
            problems.append(f"sized field {name!r} is not a list field of {named(f.node.type)}")
    return problems


@pytest.mark.parametrize("name", sorted(subgraph_sdls()))
def test_every_list_field_of_a_subgraph_declares_a_bound(name: str) -> None:
    assert unbounded(parse(subgraph_sdls()[name])) == []


def test_the_supergraph_keeps_every_bound() -> None:
    document = parse(SUPERGRAPH.read_text())
    assert unbounded(document) == []
    assert any(d.name.value == "listSize" for d in document.definitions if d.kind == "directive_definition")  # type: ignore[attr-defined]


def test_a_list_without_a_bound_is_caught() -> None:
    # Given lists with no bound, a bad slicing argument, and a connection one of whose fields omits it
    sdl = """
    type Query {
      a: [T!]!
      b(first: String): [T!]! @listSize(slicingArguments: ["first"])
      c(first: Int = 5): C @listSize(slicingArguments: ["first"], sizedFields: ["edges"])
      d: C
      e: [T!]! @listSize(assumedSize: 3)
    }
    type T { id: ID }
    type C { edges: [T!]! }
    """
    # Then each is reported, and the bounded one is not
    assert sorted(p.split(":")[0] for p in unbounded(parse(sdl))) == ["C.edges", "Query.a", "Query.b"]
