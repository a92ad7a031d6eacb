"""Engines and sessions: the directory database and the logical tenant shards, routed by shard number."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Histogram
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from db.base import SHARD_SCHEMA
from db.locator import ShardLocator
from db.shardmap import ShardLocation, ShardMap

QueryHook = Callable[[str, str], None]  # (statement, database URL without password)

POOL_WAIT = Histogram(
    "beep_db_pool_wait_seconds",
    "Time a checkout took to get a pooled connection: waiting for a free one, or opening a new one.",
    ["database"],
    buckets=(0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0),
)


class TimedPool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio queue pool, reporting each checkout's wait in `beep_db_pool_wait_seconds`
    (the pool has no event before a checkout waits). `_do_get` is the queue pool's checkout."""

    wait: Any = None  # the histogram's child for this database (Database.engine)

    def _do_get(self) -> Any:
        started = time.perf_counter()
        try:
            return super()._do_get()
        finally:
            if self.wait is not None:
                self.wait.observe(time.perf_counter() - started)

    def recreate(self) -> TimedPool:  # after a disconnect: the new pool reports as this one did
        fresh = super().recreate()
        assert isinstance(fresh, TimedPool)  # QueuePool.recreate builds self.__class__
        fresh.wait = self.wait
        return fresh


class SerializedSession(AsyncSession):
    """An AsyncSession that queues concurrent callers instead of failing.

    GraphQL resolves sibling fields concurrently, and their DataLoaders share the request's session for a
    shard; a plain AsyncSession refuses concurrent use. Each awaitable operation takes the session's lock
    (`scalars` goes through `execute`, so it is covered and not wrapped twice).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = asyncio.Lock()

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await super().execute(*args, **kwargs)

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await super().scalar(*args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await super().get(*args, **kwargs)

    async def refresh(self, *args: Any, **kwargs: Any) -> None:
        async with self._lock:
            await super().refresh(*args, **kwargs)

    async def delete(self, instance: object) -> None:
        async with self._lock:
            await super().delete(instance)

    async def flush(self, objects: Any = None) -> None:
        async with self._lock:
            await super().flush(objects)

    async def commit(self) -> None:
        async with self._lock:
            await super().commit()

    async def rollback(self) -> None:
        async with self._lock:
            await super().rollback()

    async def close(self) -> None:
        async with self._lock:
            await super().close()


class Database:
    """Owns one engine (connection pool) per physical database and hands out per-shard sessions."""

    def __init__(self, directory_url: str, shard_map: ShardMap, *, pool_size: int = 10) -> None:
        self.directory_url = directory_url
        self.shard_map = shard_map
        self._pool_size = pool_size
        self._engines: dict[str, AsyncEngine] = {}
        self._shard_binds: dict[int, AsyncEngine] = {}
        self._read_binds: dict[int | None, AsyncEngine] = {}  # None: the directory
        self._query_hooks: list[QueryHook] = []
        self.locator = ShardLocator()

    def engine(self, url: str) -> AsyncEngine:
        existing = self._engines.get(url)
        if existing is not None:
            return existing
        # Optimistic disconnect handling, not a ping per checkout (a round trip that measured 12-23% of a
        # busy subgraph's CPU): a dropped connection fails the request using it, and SQLAlchemy then
        # discards every connection opened before the failure (a database restart costs the requests in
        # flight, not one per pooled connection). Recycling bounds a connection's age below idle timeouts.
        kwargs: dict[str, Any] = {"pool_recycle": 1800}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30}
        else:
            # As many connections as before at most (twice the setting), all of them kept once opened: an
            # overflow connection was closed as soon as it was returned, so past 10 requests in flight each
            # checkout opened a connection (TCP, startup, SSL probe) and closed it again.
            kwargs.update(pool_size=2 * self._pool_size, max_overflow=0, poolclass=TimedPool)
        engine = create_async_engine(url, **kwargs)
        if isinstance(engine.sync_engine.pool, TimedPool):
            engine.sync_engine.pool.wait = POOL_WAIT.labels(self.pool_name(url))
        if url.startswith("sqlite"):
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "before_cursor_execute", self._on_query)
        self._engines[url] = engine
        return engine

    def pool_name(self, url: str) -> str:
        """A database's name in metrics: `directory`, or `physical-N` (its place in the shard map)."""
        if url == self.directory_url:
            return "directory"
        physical = self.shard_map.physical_urls()
        return f"physical-{physical.index(url)}" if url in physical else "other"

    def engines(self) -> dict[str, AsyncEngine]:
        """The engines opened so far, by URL (their pools are reported in /metrics)."""
        return dict(self._engines)

    @property
    def directory_engine(self) -> AsyncEngine:
        return self.engine(self.directory_url)

    def shard_engine(self, shard: int) -> AsyncEngine:
        bind = self._shard_binds.get(shard)
        if bind is None:
            location = self.shard_map.location(shard)
            bind = self.engine(location.url).execution_options(
                schema_translate_map={SHARD_SCHEMA: location.schema}
            )
            self._shard_binds[shard] = bind
        return bind

    def location(self, shard: int) -> ShardLocation:
        return self.shard_map.location(shard)

    def directory_session(self) -> AsyncSession:
        return SerializedSession(self.directory_engine, expire_on_commit=False)

    def shard_session(self, shard: int) -> AsyncSession:
        return SerializedSession(self.shard_engine(shard), expire_on_commit=False)

    def directory_reader(self) -> AsyncSession:
        """A session for reads only, in autocommit: each statement is its own transaction, so it costs no
        BEGIN before its first statement and no ROLLBACK when it closes (two round trips of three for a
        single read). Read committed sees the same rows either way; never write through it."""
        return SerializedSession(self._read_bind(None), expire_on_commit=False)

    def shard_reader(self, shard: int) -> AsyncSession:
        """As `directory_reader`, for a shard."""
        return SerializedSession(self._read_bind(shard), expire_on_commit=False)

    def _read_bind(self, shard: int | None) -> AsyncEngine:
        bind = self._read_binds.get(shard)
        if bind is None:
            base = self.directory_engine if shard is None else self.shard_engine(shard)
            # The pool's connections: set (and reset on return) as an attribute of asyncpg's adapter,
            # no statement. SQLite keeps its own default: it runs in one process, not on the send path.
            is_sqlite = base.url.get_backend_name() == "sqlite"
            bind = base if is_sqlite else base.execution_options(isolation_level="AUTOCOMMIT")
            self._read_binds[shard] = bind
        return bind

    async def warm(self, connections: int) -> int:
        """Open up to `connections` connections in each PostgreSQL pool this process may use (the
        directory and every physical database of the shard map), before it serves: a fresh process's
        first burst otherwise opens them checkout by checkout, each request waiting for a backend to start
        and authenticate (bench/README.md, N = 50 on a fresh stack). They stay pooled; SQLite has no pool
        to warm. Returns how many it opened."""
        opened = 0
        for url in dict.fromkeys([self.directory_url, *self.shard_map.physical_urls()]):
            engine = self.engine(url)
            pool = engine.sync_engine.pool
            if not isinstance(pool, TimedPool):  # SQLite's
                continue
            wanted = min(connections, pool.size()) - pool.checkedin()
            if wanted > 0:
                await asyncio.gather(*(_open_and_return(engine) for _ in range(wanted)))
                opened += wanted
        return opened

    def add_query_hook(self, hook: QueryHook) -> Callable[[], None]:
        """Observe every SQL statement (tests count queries with it); returns the remover."""
        self._query_hooks.append(hook)
        return lambda: self._query_hooks.remove(hook)

    def _on_query(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not self._query_hooks:
            return
        url = conn.engine.url.render_as_string(hide_password=True)
        for hook in self._query_hooks:
            hook(statement, url)

    async def dispose(self) -> None:
        for engine in self._engines.values():
            await engine.dispose()
        self._engines.clear()
        self._shard_binds.clear()
        self._read_binds.clear()


async def _open_and_return(engine: AsyncEngine) -> None:
    connection = await engine.connect()  # asyncpg's connect and SQLAlchemy's per-connection set-up
    await connection.close()  # back into the pool, which keeps it (pool_size, no overflow)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed while one writer commits; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
