"""A directory and two shards in SQLite files, migrated: the `database` fixture of the unit tests that
need real stores without services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from db.engines import Database
from db.migrate import upgrade
from db.shardmap import ShardMap


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    shard_map = ShardMap.parse(f"0-1=sqlite+aiosqlite:///{tmp_path}/shard_{{shard}}.db", 2)
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/directory.db", shard_map)
    await upgrade(db)
    yield db
    await db.dispose()
