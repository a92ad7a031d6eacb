"""Each subgraph's `ErrorCode` names its own domain's codes (kernel/web/subgraph_schema.py): exactly those
its mutations declare; the supergraph's is their union; a query that could return a user error is refused
when the schema is built."""

from __future__ import annotations

import re

import pytest
import strawberry

from beep.registry import all_definitions
from beep.supergraph import SDL_DIR
from subgraphs.kernel.errors import ErrorCode, NotFoundError
from subgraphs.kernel.web.subgraph_schema import domain_codes, subgraph_schema

pytestmark = pytest.mark.unit


def enum_values(sdl: str) -> set[str]:
    found = re.search(r"^enum ErrorCode \{(.*?)^\}", sdl, re.M | re.S)
    assert found, "no ErrorCode in the SDL"
    return {line.strip() for line in found.group(1).splitlines() if line.strip()}


@pytest.mark.parametrize("definition", all_definitions(), ids=lambda d: d.name)
def test_a_subgraph_lists_the_codes_its_mutations_declare(definition) -> None:  # type: ignore[no-untyped-def]
    declared = {code.value for code in domain_codes(definition.schema)}
    assert declared, f"{definition.name} declares no codes"
    assert enum_values(definition.schema.as_str()) == declared
    assert enum_values((SDL_DIR / f"{definition.name}.graphql").read_text()) == declared


def test_no_subgraph_lists_every_code_and_the_supergraph_has_their_union() -> None:
    every = {code.value for code in ErrorCode}
    by_subgraph = {d.name: {c.value for c in domain_codes(d.schema)} for d in all_definitions()}
    assert all(codes < every for codes in by_subgraph.values())
    union = set().union(*by_subgraph.values())
    supergraph = (SDL_DIR.parent / "supergraph.graphql").read_text()
    found = re.search(r"^enum ErrorCode[^{]*\{(.*?)^\}", supergraph, re.M | re.S)
    assert found
    values = {line.split()[0] for line in found.group(1).splitlines() if line.strip()}
    assert values == union


@strawberry.type
class Thing:
    id: strawberry.ID


@strawberry.type
class QueryWithAUserError:
    @strawberry.field
    def thing(self) -> Thing | NotFoundError:
        return NotFoundError(code=ErrorCode.NOT_FOUND, message="No such thing.", field=None)


@strawberry.type
class Mutation:
    @strawberry.mutation
    def touch(self) -> bool:
        return True


def test_a_query_returning_a_user_error_is_refused() -> None:
    with pytest.raises(TypeError, match=r"Query\.thing returns a UserError"):
        subgraph_schema(query=QueryWithAUserError, mutation=Mutation)
