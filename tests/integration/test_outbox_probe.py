"""The relay's sweep asks each physical database once which stores have work (kernel/events/outbox_probe.py):
on SQLite (a file per store) and on PostgreSQL (a schema per store, one UNION ALL per database)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from db.engines import Database
from db.migrate import upgrade
from db.shardmap import ShardMap
from subgraphs.kernel.events import outbox
from subgraphs.kernel.events.bus import InProcessBus
from subgraphs.kernel.events.catalogue import Event
from subgraphs.kernel.events.outbox_probe import stores_with_work
from subgraphs.kernel.events.relay import Consumer, OutboxRelay
from subgraphs.messages.events import MessageDeleted
from tests.harness.services import PostgresServer
from tests.harness.stack import Stack

STORES = [outbox.DIRECTORY_STORE, *range(8)]


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        shards = ShardMap.parse(f"0-7=sqlite+aiosqlite:///{tmp_path}/shard_{{shard}}.db", 8)
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/directory.db", shards)
    else:  # fresh databases on the full stack's PostgreSQL: two physical databases of four shards each
        full_stack: Stack = request.getfixturevalue("full_stack")
        postgres = next(s for s in full_stack.services if isinstance(s, PostgresServer))
        run = secrets.token_hex(3)
        urls = [postgres.create_database(f"probe_{name}_{run}") for name in ("dir", "a", "b")]
        db = Database(urls[0], ShardMap.parse(f"0-3={urls[1]};4-7={urls[2]}", 8))
    await upgrade(db)
    yield db
    await db.dispose()


async def write(database: Database, store: int, message_id: int) -> None:
    session = database.shard_session(store) if store >= 0 else database.directory_session()
    async with session, session.begin():
        await outbox.write(session, store, [("channel:7", MessageDeleted(message_id, 7, 1))])


async def test_the_probe_names_stores_to_number_to_publish_and_to_consume(database: Database) -> None:
    handled: list[Event] = []

    async def handle(_store: int, events: list[Event]) -> None:
        handled.extend(events)

    consumer = Consumer("probe-test", handle)
    relay = OutboxRelay(database, InProcessBus(), stores=STORES, owner="probe", consumers=[consumer])
    for store in STORES:
        await relay.relay_store(store)  # leads every store; registers the consumer
    assert await stores_with_work(database, STORES, [consumer.name]) == set()

    await write(database, 2, 1)
    await write(database, 6, 2)
    await write(database, outbox.DIRECTORY_STORE, 3)
    assert await stores_with_work(database, STORES, []) == {2, 6, outbox.DIRECTORY_STORE}  # to number

    await relay.relay_store(2)
    await relay.relay_store(outbox.DIRECTORY_STORE)
    await relay.record_published()  # as the relay does when idle
    # 2 and the directory are published but not consumed; 6 still waits for its number.
    assert await stores_with_work(database, STORES, []) == {6}
    assert await stores_with_work(database, STORES, [consumer.name]) == {2, 6, outbox.DIRECTORY_STORE}

    await relay.consume_store(2, consumer)
    await relay.consume_store(outbox.DIRECTORY_STORE, consumer)
    await relay.relay_store(6)
    await relay.record_published()
    await relay.consume_store(6, consumer)
    assert await stores_with_work(database, STORES, [consumer.name]) == set()
    assert sorted(e.message_id for e in handled) == [1, 2, 3]  # type: ignore[attr-defined]


async def test_the_sweep_visits_stores_with_work_and_every_store_now_and_then(database: Database) -> None:
    relay = OutboxRelay(database, InProcessBus(), stores=STORES, owner="probe")
    for _ in range(2):  # a first round leads each store, the second finds it settled
        for store in STORES:
            await relay.relay_store(store)
    relay._dirty.clear()
    relay._visit_all_at = float("inf")
    await relay._sweep()
    assert relay._dirty == set()  # idle: no store is visited

    await write(database, 5, 1)
    await relay._sweep()
    assert relay._dirty == {5}

    relay._dirty.clear()
    relay._visit_all_at = 0.0  # due: every store gets a round (where its old events are pruned)
    await relay._sweep()
    assert relay._dirty == set(STORES)
