"""The live signal's subgraph side (kernel/web/live_signal.py): a subscription that yields the marker sends
one result with no data and `extensions.beepLive`, through the executor and extensions every subgraph runs;
every other event is executed as before, without the mark."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from subgraphs.kernel.web import live_signal
from subgraphs.kernel.web.extensions import schema_extensions
from subgraphs.kernel.web.limits import BudgetedExecution


@strawberry.type
class Tick:
    n: int


@strawberry.type
class Query:
    @strawberry.field
    def ok(self) -> bool:
        return True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self) -> AsyncGenerator[Tick, None]:
        yield live_signal.marker()
        yield Tick(n=1)
        yield live_signal.passing(Tick(n=2), lambda t: Tick(n=t.n * 10))

    @strawberry.subscription
    async def resumable(self) -> AsyncGenerator[Tick, None]:
        yield live_signal.passing(live_signal.marker("3:41"), lambda t: Tick(n=0))
        yield Tick(n=42)


schema = strawberry.Schema(
    query=Query,
    subscription=Subscription,
    extensions=schema_extensions(),
    execution_context_class=BudgetedExecution,
)


async def test_the_marker_is_a_result_with_no_data_and_the_mark() -> None:
    results = [r async for r in await schema.subscribe("subscription { ticks { n } }")]  # type: ignore[union-attr]
    assert [(r.data, r.errors) for r in results] == [
        (None, None),
        ({"ticks": {"n": 1}}, None),
        ({"ticks": {"n": 20}}, None),
    ]
    assert [(r.extensions or {}).get(live_signal.EXTENSION) for r in results] == [True, None, None]


async def test_a_stream_that_can_replay_says_where_it_is_live_from() -> None:
    results = [r async for r in await schema.subscribe("subscription { resumable { n } }")]  # type: ignore[union-attr]
    assert [(r.data, r.errors) for r in results] == [(None, None), ({"resumable": {"n": 42}}, None)]
    assert [r.extensions or {} for r in results] == [
        {live_signal.EXTENSION: True, live_signal.LIVE_FROM: "3:41"},
        {},
    ]


def test_only_a_connection_that_asked_wants_it() -> None:
    assert live_signal.wanted({live_signal.PARAM: "1", "authorization": "Bearer x"})
    assert not live_signal.wanted({"authorization": "Bearer x"})
    assert not live_signal.wanted(None)
