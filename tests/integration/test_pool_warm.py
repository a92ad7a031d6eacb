"""Warming a process's pools on PostgreSQL: each pool opens up to the number asked, within its size, once."""

from __future__ import annotations

import sqlalchemy as sa

from db.engines import Database, TimedPool
from db.shardmap import ShardMap
from tests.harness.stack import Stack


async def test_warming_opens_each_pool_up_to_its_size_once(full_stack: Stack) -> None:
    directory, shards_a, shards_b = full_stack.database_urls
    database = Database(directory, ShardMap.parse(f"0-31={shards_a};32-63={shards_b}", 64), pool_size=2)
    physical = {directory, shards_a, shards_b}
    try:
        assert await database.warm(3) == 3 * len(physical)
        pools = {url: engine.sync_engine.pool for url, engine in database.engines().items()}
        assert set(pools) == physical
        assert all(isinstance(pool, TimedPool) for pool in pools.values())
        assert {url: pool.checkedin() for url, pool in pools.items()} == dict.fromkeys(physical, 3)  # type: ignore[attr-defined]
        assert await database.warm(3) == 0  # already open
        assert await database.warm(100) == 1 * len(physical)  # a pool keeps 2 x pool_size at most
        for engine in database.engines().values():  # and what it opened works
            async with engine.connect() as connection:
                assert await connection.scalar(sa.text("SELECT 1")) == 1
    finally:
        await database.dispose()
