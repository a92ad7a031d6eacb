"""Wait until the outbox relay has published every committed event (a barrier for tests).

Mutations answer before their events are relayed (subgraphs/kernel/events/relay.py), so an event of a test's
set-up can reach a subscription opened after it. A test that subscribes and then expects the *next*
event to be its own first waits here: once every store's outbox is published, nothing older is left
to arrive (events of one topic leave the relay in order).
"""

from __future__ import annotations

import asyncio
import time

import sqlalchemy as sa

from db.engines import Database
from db.shardmap import ShardMap
from subgraphs.kernel.events import outbox
from tests.harness.stack import Stack

LOGICAL_SHARDS = 64
_databases: dict[str, Database] = {}


def database_of(stack: Stack) -> Database:
    """The stack's databases, as its subgraphs see them (full: PostgreSQL; embedded: SQLite files)."""
    if stack.mode == "full":
        directory, shards_a, shards_b = stack.database_urls
        return Database(directory, ShardMap.parse(f"0-31={shards_a};32-63={shards_b}", LOGICAL_SHARDS))
    data = stack.workdir / "data"
    return Database(
        f"sqlite+aiosqlite:///{data}/directory.db",
        ShardMap.parse(f"0-63=sqlite+aiosqlite:///{data}/shards/shard_{{shard}}.db", LOGICAL_SHARDS),
    )


async def unrelayed_stores(database: Database) -> list[int]:
    """Stores with committed events the relay has not published yet."""
    behind = []
    for store in [outbox.DIRECTORY_STORE, *range(LOGICAL_SHARDS)]:
        tables = outbox.tables_of(store)
        rows, relay = tables.outbox, tables.relay
        state = sa.select(
            sa.select(sa.func.count()).where(rows.c.position.is_(None)).scalar_subquery(),
            sa.select(sa.func.max(rows.c.position)).scalar_subquery(),
            sa.select(relay.c.published_through).scalar_subquery(),
        )
        directory = store == outbox.DIRECTORY_STORE
        async with database.directory_session() if directory else database.shard_session(store) as session:
            unpositioned, last, published = (await session.execute(state)).one()
        if unpositioned or (last is not None and (published is None or published < last)):
            behind.append(store)
    return behind


async def wait_relayed(stack: Stack, timeout: float = 30.0) -> None:
    database = _databases.get(str(stack.workdir))
    if database is None:
        database = _databases[str(stack.workdir)] = database_of(stack)
    deadline = time.monotonic() + timeout
    while behind := await unrelayed_stores(database):
        if time.monotonic() > deadline:
            raise AssertionError(f"the outbox relay left stores {behind} unpublished for {timeout:g} s")
        await asyncio.sleep(0.05)
