"""A long subscription holds no more memory after many events than after a few (kernel/web/limits.py:
graphql-core 3.3's per-event executors shared a memo that grew by every event, for the subscription's
whole life)."""

from __future__ import annotations

import gc
from collections.abc import AsyncGenerator

import strawberry
from graphql.execution.collect_fields import FieldDetails

from subgraphs.kernel.web.extensions import schema_extensions
from subgraphs.kernel.web.limits import BudgetedExecution


@strawberry.type
class Person:
    name: str


@strawberry.type
class Note:
    n: int
    author: Person
    channel: Person


@strawberry.type
class Query:
    @strawberry.field
    def ok(self) -> bool:
        return True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def notes(self, count: int) -> AsyncGenerator[Note, None]:
        for n in range(count):
            yield Note(n=n, author=Person(name="ada"), channel=Person(name="general"))


schema = strawberry.Schema(
    query=Query,
    subscription=Subscription,
    extensions=schema_extensions(),
    execution_context_class=BudgetedExecution,
)

SUBSCRIPTION = "subscription { notes(count: 300) { n author { name } channel { name } } }"


def field_details_alive() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, FieldDetails))


async def test_events_leave_nothing_behind_in_the_subscription() -> None:
    stream = await schema.subscribe(SUBSCRIPTION)
    assert not hasattr(stream, "errors"), stream
    try:
        seen = [await anext(stream) for _ in range(20)]  # type: ignore[arg-type]
        after_a_few = field_details_alive()
        seen += [await anext(stream) for _ in range(250)]  # type: ignore[arg-type]
        after_many = field_details_alive()
    finally:
        await stream.aclose()  # type: ignore[union-attr]
    assert [r.data for r in seen[:2]] == [
        {"notes": {"n": 0, "author": {"name": "ada"}, "channel": {"name": "general"}}},
        {"notes": {"n": 1, "author": {"name": "ada"}, "channel": {"name": "general"}}},
    ]
    assert all(r.errors is None for r in seen) and seen[-1].data["notes"]["n"] == 269  # type: ignore[index]
    # Before the fix: 1,500 more (six field details memoized per event). Allow for noise.
    assert after_many - after_a_few < 20, (after_a_few, after_many)
