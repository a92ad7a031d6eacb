"""A throwaway embedded database (SQLite: the directory and one shard), migrated, for tests that drive the
services directly; and one transaction of a unit of work on it, as one request would run it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from db import migrate
from db.engines import Database
from db.shardmap import ShardMap
from subgraphs.kernel.events.bus import InProcessBus
from subgraphs.kernel.tenancy.uow import UnitOfWork

T = TypeVar("T")


@asynccontextmanager
async def migrated_database(directory: Path) -> AsyncIterator[Database]:
    db = Database(
        f"sqlite+aiosqlite:///{directory}/directory.db",
        ShardMap.parse(f"0-0=sqlite+aiosqlite:///{directory}/shard_{{shard}}.db", 1),
    )
    await migrate.upgrade(db)
    try:
        yield db
    finally:
        await db.dispose()


async def in_transaction(db: Database, operation: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """`operation` in a transaction of its own unit of work, committed (as a request of any process)."""
    uow = UnitOfWork(db, InProcessBus())
    try:
        async with uow.atomic():
            return await operation(uow)
    finally:
        await uow.close()
