"""Prometheus metrics (kernel/metrics.py, kernel/events/outbox_metrics.py): what moves when operations run,
and that every `beep_*` series follows Prometheus' naming conventions with no unbounded label value (no user,
channel, message or server id, no client-chosen operation name).

`check_exposition` is also what the integration test applies to every process's real /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import pytest
import strawberry
from prometheus_client import REGISTRY, generate_latest

from db.engines import Database
from subgraphs.kernel import metrics
from subgraphs.kernel.errors import BeepGraphQLError, TopLevelCode
from subgraphs.kernel.events import outbox
from subgraphs.kernel.events.outbox_metrics import OutboxGauges
from subgraphs.kernel.web.extensions import schema_extensions
from subgraphs.messages.events import MessageDeleted
from tests.unit.metrics_checks import (
    check_exposition,
    sample,
)
from tests.unit.sqlite_stores import database

pytestmark = pytest.mark.unit
__all__ = ["database"]  # the fixture (sqlite_stores.py)


# ---------------------------------------------------------------------------------------------
# a small schema with the subgraphs' extensions


@dataclass
class FakeRequest:
    scope: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeContext:
    request: FakeRequest


@strawberry.type
class Query:
    @strawberry.field
    def message(self, id: strawberry.ID) -> str:
        return f"message {id}"

    @strawberry.field
    def forbidden(self) -> str:
        raise BeepGraphQLError("No.", TopLevelCode.FORBIDDEN)

    @strawberry.field
    def broken(self) -> str:
        raise RuntimeError("a bug")


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self, count: int) -> AsyncGenerator[int, None]:
        for n in range(count):
            await asyncio.sleep(0)
            yield n


schema = strawberry.Schema(query=Query, subscription=Subscription, extensions=schema_extensions())


def context(subgraph: str = "messages") -> FakeContext:
    return FakeContext(FakeRequest({"state": {metrics.SUBGRAPH_STATE_KEY: subgraph}}))


async def test_operations_are_counted_by_type_and_outcome_without_their_name() -> None:
    before = {
        outcome: sample(
            "beep_graphql_requests_total", subgraph="messages", operation_type="query", outcome=outcome
        )
        for outcome in ("ok", "user_error", "server_error")
    }
    timed = sample("beep_graphql_request_duration_seconds_count", subgraph="messages", operation_type="query")
    unparsed = {"subgraph": "messages", "operation_type": "unknown", "outcome": "user_error"}
    unparsed_before = sample("beep_graphql_requests_total", **unparsed)

    # A client-chosen operation name and an id in the variables: neither may become a label value.
    ok = await schema.execute(
        "query Msg7339117282958209024($id: ID!) { message(id: $id) }",
        variable_values={"id": "7339117282958209024"},
        context_value=context(),
        operation_name="Msg7339117282958209024",
    )
    assert ok.errors is None
    forbidden = await schema.execute("{ forbidden }", context_value=context())
    assert forbidden.errors and forbidden.errors[0].extensions == {"code": "FORBIDDEN"}
    broken = await schema.execute("{ broken }", context_value=context())
    assert broken.errors and broken.errors[0].extensions == {"code": "INTERNAL_SERVER_ERROR"}
    invalid = await schema.execute("{ nosuchfield }", context_value=context())
    assert invalid.errors
    unparsable = await schema.execute("{ message(", context_value=context())
    assert unparsable.errors

    def moved(outcome: str) -> float:
        now = sample(
            "beep_graphql_requests_total", subgraph="messages", operation_type="query", outcome=outcome
        )
        return now - before[outcome]

    assert (moved("ok"), moved("user_error"), moved("server_error")) == (1, 2, 1)
    assert sample("beep_graphql_requests_total", **unparsed) - unparsed_before == 1
    assert (
        sample("beep_graphql_request_duration_seconds_count", subgraph="messages", operation_type="query")
        - timed
        == 4  # the unparsable one has no type
    )
    text = generate_latest(REGISTRY).decode()
    assert "7339117282958209024" not in text
    assert "Msg" not in text
    assert check_exposition(text) == []


async def test_running_subscriptions_are_a_gauge_and_count_when_they_end() -> None:
    running = "beep_graphql_subscriptions"
    ended = {"subgraph": "friends", "operation_type": "subscription", "outcome": "ok"}
    before = sample("beep_graphql_requests_total", **ended)
    stream = await schema.subscribe("subscription { ticks(count: 2) }", context_value=context("friends"))
    assert not hasattr(stream, "errors"), stream
    first = await anext(stream)  # type: ignore[arg-type]
    assert first.data == {"ticks": 0}
    assert sample(running, subgraph="friends") == 1
    rest = [r async for r in stream]  # type: ignore[union-attr]
    assert [r.data for r in rest] == [{"ticks": 1}]
    assert sample(running, subgraph="friends") == 0
    assert sample("beep_graphql_requests_total", **ended) - before == 1
    # Subscriptions are not timed as requests: their lifetime is not a latency.
    assert (
        sample(
            "beep_graphql_request_duration_seconds_count", subgraph="friends", operation_type="subscription"
        )
        == 0
    )


def test_the_checker_fails_on_ids_operation_names_and_convention_breaks() -> None:
    bad = "\n".join(
        [
            "# HELP beep_x_total x",
            "# TYPE beep_x_total counter",
            'beep_x_total{subgraph="messages",channel="7339117282958209024"} 1',
            'beep_x_total{subgraph="7339117282958209024"} 1',
            "# HELP beep_y y",
            "# TYPE beep_y counter",
            'beep_y{operation_type="query"} 1',
            "# HELP beep_send_duration_ms d",
            "# TYPE beep_send_duration_ms gauge",
            'beep_send_duration_ms{store="7339117282958209024"} 1',
            "# HELP beep_z_total z",
            "# TYPE beep_z_total gauge",
            'beep_z_total{consumer="SendMessageToChannel"} 1',
            "",
        ]
    )
    problems = check_exposition(bad)
    assert any("unexpected label 'channel'" in p for p in problems), problems
    assert any("subgraph='7339117282958209024'" in p for p in problems), problems
    assert any("beep_send_duration_ms: a time without the _seconds unit" in p for p in problems), problems
    assert any("store='7339117282958209024'" in p for p in problems), problems
    assert any("beep_z_total: a gauge named like a counter" in p for p in problems), problems
    assert any("SendMessageToChannel" in p for p in problems), problems  # a name-like value


async def test_rate_limit_hits_and_bus_deliveries_move() -> None:
    from subgraphs.kernel.events.bus import InProcessBus
    from subgraphs.kernel.web.ratelimit import CREATE_SERVER, InProcessRateLimiter, enforce

    hits = sample("beep_rate_limit_hits_total", limit="create_server")
    delivered = sample("beep_bus_events_delivered_total")
    user = 7339117282958209024
    limiter = InProcessRateLimiter()
    for _ in range(CREATE_SERVER.count):
        await limiter.hit(CREATE_SERVER, user)
    with pytest.raises(BeepGraphQLError):
        await enforce(limiter, CREATE_SERVER, user)
    bus = InProcessBus()
    async with bus.subscribe(f"channel:{user}") as a, bus.subscribe(f"channel:{user}") as b:
        await bus.publish(f"channel:{user}", MessageDeleted(1, 7, 1))
        await asyncio.wait_for(anext(a), 1)
        await asyncio.wait_for(anext(b), 1)
    assert sample("beep_rate_limit_hits_total", limit="create_server") - hits == 1
    assert sample("beep_bus_events_delivered_total") - delivered == 2
    assert check_exposition(generate_latest(REGISTRY).decode()) == []


# ---------------------------------------------------------------------------------------------
# the outbox's backlog and lag, and the pools, on real SQLite files


async def test_outbox_backlog_and_lag_per_store_and_consumer(database: Database) -> None:
    async with database.shard_session(1) as session, session.begin():
        await outbox.write(session, 1, [("channel:7", MessageDeleted(i, 7, 1)) for i in (1, 2, 3)])
    now = [0.0]
    gauges = OutboxGauges(
        database, [outbox.DIRECTORY_STORE, 0, 1], ["search-index"], min_interval=10, clock=lambda: now[0]
    )
    await gauges.refresh()
    assert sample("beep_outbox_backlog_events", store="1") == 3
    assert sample("beep_outbox_backlog_events", store="0") == 0
    assert sample("beep_outbox_backlog_events", store="directory") == 0
    assert sample("beep_outbox_relay_lag_seconds", store="1") > 0
    assert sample("beep_outbox_relay_lag_seconds", store="0") == 0
    assert sample("beep_outbox_consumer_backlog_events", consumer="search-index") == 0  # not registered

    # Relayed: nothing waits for the bus; the consumer (registered at 0) has all three to handle.
    from subgraphs.kernel.events.bus import InProcessBus
    from subgraphs.kernel.events.relay import Consumer, OutboxRelay

    async def never(_store: int, _events: list[Any]) -> None:
        raise RuntimeError("not yet")

    relay = OutboxRelay(database, InProcessBus(), stores=[1], consumers=[Consumer("search-index", never)])
    async with database.shard_session(1) as session, session.begin():
        t = outbox.tables_of(1)
        import sqlalchemy as sa

        await session.execute(sa.insert(t.consumers).values(name="search-index", through=0))
    await relay.relay_store(1)
    await relay.record_published()  # as the relay does when idle
    await gauges.refresh()  # within min_interval: nothing read
    assert sample("beep_outbox_backlog_events", store="1") == 3
    now[0] = 11
    await gauges.refresh()
    assert sample("beep_outbox_backlog_events", store="1") == 0
    assert sample("beep_outbox_relay_lag_seconds", store="1") == 0
    assert sample("beep_outbox_consumer_backlog_events", consumer="search-index") == 3
    assert sample("beep_outbox_consumer_lag_seconds", consumer="search-index") > 0

    metrics.watch_database(database)
    text = generate_latest(REGISTRY).decode()
    assert 'beep_db_pool_connections_in_use{database="directory"}' in text
    assert 'beep_db_pool_max_connections{database="physical-0"}' in text
    assert check_exposition(text) == []


def test_pool_checkouts_are_timed_and_a_recreated_pool_still_reports() -> None:
    import sqlite3

    from db.engines import POOL_WAIT, TimedPool

    count = "beep_db_pool_wait_seconds_count"
    before = sample(count, database="physical-7")
    pool = TimedPool(lambda: sqlite3.connect(":memory:"), pool_size=1, max_overflow=0)
    pool.wait = POOL_WAIT.labels("physical-7")
    pool.connect().close()
    pool.connect().close()
    fresh = pool.recreate()  # what SQLAlchemy does after a disconnect
    fresh.connect().close()
    assert sample(count, database="physical-7") - before == 3
