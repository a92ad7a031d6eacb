"""A subgraph's own limits (kernel/web/limits.py): depth, aliases and tokens as the router counts them, and a
response budget that stops the work once it is spent, on a schema whose answer grows as 10^depth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import strawberry

from subgraphs.kernel.web.extensions import schema_extensions
from subgraphs.kernel.web.limits import BudgetedExecution, limits_of, more_tokens_than

RESOLVED: list[int] = []  # node resolutions, to prove the work stops


@strawberry.type
class Node:
    level: int

    @strawberry.field
    def children(self) -> list[Node]:
        RESOLVED.append(self.level)
        return [Node(level=self.level + 1) for _ in range(10)]


@strawberry.type
class Query:
    @strawberry.field
    def root(self) -> Node:
        return Node(level=0)

    @strawberry.field
    def count(self) -> int:
        return 1


WRITES: list[str] = []


@strawberry.type
class Planted:
    id: int
    node: Node | None


@strawberry.type
class Mutation:
    @strawberry.mutation
    def plant(self) -> Planted:
        WRITES.append("planted")
        return Planted(id=len(WRITES), node=Node(level=0))


schema = strawberry.Schema(
    query=Query, mutation=Mutation, extensions=schema_extensions(), execution_context_class=BudgetedExecution
)


@dataclass
class _Settings:
    max_query_depth: int = 16
    max_query_tokens: int = 5000
    max_query_aliases: int = 60
    max_response_items: int = 50_000


@dataclass
class _Runtime:
    settings: _Settings


@dataclass
class _Context:
    runtime: _Runtime


def context(**limits: int) -> _Context:
    return _Context(_Runtime(_Settings(**limits)))


def nested(depth: int) -> str:
    """`{ root { children { children ... { level } } } }`: depth + 1 levels of fields, then `level`."""
    return "{ root { " + "children { " * depth + "level" + " }" * depth + " } }"


def codes(result: Any) -> list[str]:
    return [e.extensions.get("code") for e in result.errors or []]


async def test_an_operation_deeper_than_the_limit_is_refused_before_anything_runs() -> None:
    RESOLVED.clear()
    result = await schema.execute(nested(14), context_value=context(max_query_depth=12))
    assert codes(result) == ["GRAPHQL_VALIDATION_FAILED"]
    assert result.errors and "Query depth limit of 12 exceeded, found 16." in result.errors[0].message
    assert result.data is None and RESOLVED == []
    # Through fragments, counted as if inline (as the router does)
    fragments = (
        "query { root { ...A } } fragment A on Node { children { ...B } } "
        "fragment B on Node { children { level } }"
    )
    assert codes(await schema.execute(fragments, context_value=context(max_query_depth=3))) == [
        "GRAPHQL_VALIDATION_FAILED"
    ]
    assert codes(await schema.execute(fragments, context_value=context(max_query_depth=4))) == []


async def test_too_many_aliases_and_too_many_tokens_are_refused() -> None:
    aliased = "{ " + " ".join(f"a{i}: count" for i in range(61)) + " }"
    result = await schema.execute(aliased, context_value=context())
    assert codes(result) == ["GRAPHQL_VALIDATION_FAILED"], result.errors
    assert "Aliases limit of 60 exceeded, found 61." in result.errors[0].message  # type: ignore[index]
    padded = "{ count " + "__typename " * 5000 + "}"
    result = await schema.execute(padded, context_value=context())
    assert codes(result) == ["GRAPHQL_VALIDATION_FAILED"], result.errors
    assert result.errors and result.errors[0].message == "Token limit of 5000 exceeded."
    assert more_tokens_than("{ a b c }", 4) and not more_tokens_than("{ a b c }", 5)


async def test_a_response_past_its_budget_stops_the_work_and_says_so() -> None:
    RESOLVED.clear()
    # 10 + 100 + 1,000 + 10,000 + 100,000 items: past a 5,000 budget at the fourth level
    result = await schema.execute(nested(5), context_value=context(max_response_items=5000))
    assert codes(result) == ["RESPONSE_TOO_LARGE"], result.errors
    assert result.data is None and len(result.errors or []) == 1
    # Every node whose children were resolved was counted first: at most the budget's worth were, of
    # the 11,111 the whole answer would resolve; past it, every pending list failed at once.
    assert len(RESOLVED) <= 5000 + 1, len(RESOLVED)
    # Within the budget, the same shape answers in full.
    result = await schema.execute(nested(3), context_value=context(max_response_items=5000))
    assert result.errors is None and result.data is not None
    assert len(result.data["root"]["children"][9]["children"][9]["children"]) == 10


async def test_a_mutation_past_the_budget_keeps_its_data_so_its_write_does_not_read_as_failed() -> None:
    WRITES.clear()
    query = "mutation { plant { id node { children { children { children { children { level } } } } } } }"
    result = await schema.execute(query, context_value=context(max_response_items=5000))
    assert WRITES == ["planted"] and codes(result) == ["RESPONSE_TOO_LARGE"]
    assert result.data == {"plant": {"id": 1, "node": None}}


def test_defaults_are_a_little_above_the_routers() -> None:
    limits = limits_of(None)
    assert (limits.depth, limits.tokens, limits.aliases) > (12, 2000, 30)


@pytest.mark.parametrize("depth", [100, 3000])
async def test_absurd_nesting_is_refused_not_a_crash(depth: int) -> None:
    """Past the token limit's reach (raised here): the depth rule, or graphql-core's own parser guard."""
    RESOLVED.clear()
    result = await schema.execute(nested(depth), context_value=context(max_query_tokens=100_000))
    assert result.data is None and result.errors and RESOLVED == []
    assert [str(e.message) for e in result.errors] in (
        [f"Query depth limit of 16 exceeded, found {depth + 2}."],
        ["Syntax Error: Document is nested too deeply. Parsing aborted."],
    ), result.errors
