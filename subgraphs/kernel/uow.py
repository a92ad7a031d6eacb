"""Unit of work: the sessions one request touches, committed together, events published after commit."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from db.engines import Database
from db.ids import shard_of
from subgraphs.kernel.bus import EventBus
from subgraphs.kernel.events import Event

log = logging.getLogger("beep.uow")


class UnitOfWork:
    """Lazily opens the directory session and one session per logical shard it is asked for.

    Services receive it, read and write through it, and `emit` events; they never commit. The resolver
    owns the transaction: `async with uow.atomic(): ...` commits every touched session (directory first,
    whose rows are what the others are found by) and only then publishes the events.
    """

    def __init__(self, database: Database, bus: EventBus) -> None:
        self.database = database
        self.bus = bus
        self._directory: AsyncSession | None = None
        self._shards: dict[int, AsyncSession] = {}
        self._pending: list[tuple[str, Event]] = []
        self._depth = 0

    def directory(self) -> AsyncSession:
        if self._directory is None:
            self._directory = self.database.directory_session()
        return self._directory

    def shard(self, shard: int) -> AsyncSession:
        session = self._shards.get(shard)
        if session is None:
            session = self._shards[shard] = self.database.shard_session(shard)
        return session

    @asynccontextmanager
    async def reading(self, shard: int) -> AsyncIterator[AsyncSession]:
        """A session for a batch read. Reuses this request's session of that shard when it has one (so a
        read sees the request's own writes); otherwise a short-lived one, closed at once. A request whose
        loaders touch many shards of one database thus holds one connection at a time, not one per shard
        (which would exhaust the pool past ~20 shards)."""
        existing = self._shards.get(shard)
        if existing is not None:
            yield existing
            return
        session = self.database.shard_session(shard)
        try:
            yield session
        finally:
            await session.close()

    def for_entity(self, entity_id: int) -> AsyncSession:
        """The session of the shard an ID was minted in (IDs carry their shard)."""
        return self.shard(shard_of(entity_id))

    def emit(self, topic: str, event: Event) -> None:
        if self._depth == 0:
            raise RuntimeError("events can only be recorded inside uow.atomic()")
        self._pending.append((topic, event))

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[UnitOfWork]:
        self._depth += 1
        try:
            yield self
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._pending.clear()
                await self._rollback()
            raise
        self._depth -= 1
        if self._depth == 0:
            await self._commit()
            pending, self._pending = self._pending, []
            for topic, event in pending:
                try:
                    await self.bus.publish(topic, event)
                except Exception:
                    # Committed but not announced: clients catch up from storage on reconnect.
                    log.exception("publishing an event failed", extra={"topic": topic})

    def _sessions(self) -> list[AsyncSession]:
        sessions = [self._directory] if self._directory is not None else []
        return sessions + list(self._shards.values())

    async def _commit(self) -> None:
        for session in self._sessions():
            await session.commit()

    async def _rollback(self) -> None:
        for session in self._sessions():
            await session.rollback()

    async def close(self) -> None:
        sessions = self._sessions()
        self._directory = None
        self._shards = {}
        for session in sessions:
            await session.close()
