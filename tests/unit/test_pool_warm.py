"""A process warms its database pools before it serves; a database it cannot reach does not stop it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from db.engines import Database
from db.shardmap import ShardMap
from subgraphs.kernel.web import app
from tests.harness.ports import free_port


async def test_an_unreachable_database_leaves_the_start_to_go_on(caplog: pytest.LogCaptureFixture) -> None:
    url = f"postgresql+asyncpg://beep:secret@127.0.0.1:{free_port()}/beep"  # nothing listens there
    database = Database(url, ShardMap.parse(f"0-63={url}", 64), pool_size=2)

    try:
        with caplog.at_level(logging.WARNING, logger="beep.app"):
            await app._warm_pools(database, 2)
    finally:
        await database.dispose()
    warned = [r.getMessage() for r in caplog.records if r.name == "beep.app"]
    assert warned == ["database pools not warmed: ConnectionRefusedError"], warned
    assert "secret" not in " ".join(warned)


async def test_sqlite_has_no_pool_to_warm(tmp_path: Path) -> None:
    database = Database(
        f"sqlite+aiosqlite:///{tmp_path}/directory.db",
        ShardMap.parse(f"0-63=sqlite+aiosqlite:///{tmp_path}/shard_{{shard}}.db", 64),
    )
    try:
        assert await database.warm(4) == 0
    finally:
        await database.dispose()
