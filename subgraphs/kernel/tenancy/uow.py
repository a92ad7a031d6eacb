"""Unit of work: the sessions one request touches, committed together, with their events in the outbox."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from db.engines import Database
from subgraphs.kernel import tracing
from subgraphs.kernel.errors import TenantMoved
from subgraphs.kernel.events import outbox
from subgraphs.kernel.events.bus import EventBus
from subgraphs.kernel.events.catalogue import AccessChanged, Event
from subgraphs.kernel.tenancy import access_versions
from subgraphs.kernel.tenancy.access import WRITING

T = TypeVar("T")
log = logging.getLogger("beep.uow")


class UnitOfWork:
    """Lazily opens the directory session and one session per logical shard it is asked for.

    Services receive it, read and write through it, and `emit` events; they never commit. The resolver
    owns the transaction: `async with uow.atomic(): ...` writes the emitted events to the outbox of their
    topic's store (kernel/events/outbox.py), commits every touched session (directory first, whose rows are
    what the others are found by), then wakes the relay, which publishes them. Ephemeral signals that need no
    replay (typing) are `announce`d instead: published straight after commit, lost if the process dies.
    """

    def __init__(self, database: Database, bus: EventBus) -> None:
        self.database = database
        self.bus = bus
        self._directory: AsyncSession | None = None
        self._shards: dict[int, AsyncSession] = {}
        self._pending: list[tuple[str, Event]] = []
        self._ephemeral: list[tuple[str, Event]] = []
        self._committed: list[Callable[[], None]] = []
        self._depth = 0
        self._located: dict[int, int] = {}

    def directory(self) -> AsyncSession:
        if self._directory is None:
            self._directory = self.database.directory_session()
        return self._directory

    def shard(self, shard: int) -> AsyncSession:
        session = self._shards.get(shard)
        if session is None:
            session = self._shards[shard] = self.database.shard_session(shard)
        if self._depth > 0:  # a write transaction: access checks fence it against tenant moves
            session.info[WRITING] = True
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
        session = self.database.shard_reader(shard)
        try:
            yield session
        finally:
            await session.close()

    @asynccontextmanager
    async def autocommitting(self, shard: int) -> AsyncIterator[AsyncSession]:
        """A session of `shard` in which every statement is its own transaction: for reads, and for a
        write that is one statement (committed when it has run; `wrote_outbox` then wakes the relay for
        the outbox rows it wrote). Never this unit of work's transaction: refused inside `atomic`."""
        if self._depth:
            raise RuntimeError("autocommitting() is for work outside uow.atomic()")
        session = self.database.shard_reader(shard)
        try:
            yield session
        finally:
            await session.close()

    @contextmanager
    def one_statement_transaction(self) -> Iterator[None]:
        """Where a write that is one statement outside `atomic` runs: traced as `atomic`'s transactions are
        (the outbox rows it writes carry this span as their trace context, which the relay continues)."""
        if not tracing.ACTIVE:
            yield
            return
        with tracing.tracer.start_as_current_span("transaction"):
            yield

    async def wrote_outbox(self, stores: list[int]) -> None:
        """A statement outside `atomic` committed outbox rows in these stores: wake the relay, as the
        commit of `atomic` does."""
        await self._publish([(outbox.WAKE_TOPIC, outbox.OutboxWritten(sorted(stores)))])

    @asynccontextmanager
    async def reading_directory(self) -> AsyncIterator[AsyncSession]:
        """As `reading`, for the directory: this request's session if it has one, else a short-lived one.
        Read this way before a shard transaction starts, a request never holds one pooled connection
        while waiting for another (with both databases on one server, requests holding a shard
        connection each could otherwise wait for a directory one until the pool times out)."""
        if self._directory is not None:
            yield self._directory
            return
        session = self.database.directory_reader()
        try:
            yield session
        finally:
            await session.close()

    async def shard_for(self, entity_id: int) -> int:
        """The logical shard holding an entity's tenant: where its ID was minted, unless the tenant
        has moved since (db/locator.py). Mint a tenant's new IDs in this shard."""
        return (await self.shards_for([entity_id]))[entity_id]

    async def shards_for(self, entity_ids: Iterable[int]) -> dict[int, int]:
        wanted = [i for i in dict.fromkeys(entity_ids) if i not in self._located]
        if wanted:
            self._located.update(await self.database.locator.locate(self.directory(), wanted))
        return {i: self._located[i] for i in entity_ids}

    async def group_by_shard(self, entity_ids: Iterable[int]) -> dict[int, list[int]]:
        """IDs grouped by the shard holding them, so a batch touches each shard once."""
        groups: dict[int, list[int]] = {}
        for entity_id, shard in (await self.shards_for(entity_ids)).items():
            groups.setdefault(shard, []).append(entity_id)
        return groups

    async def for_entity(self, entity_id: int) -> AsyncSession:
        """The session of the shard holding an entity's tenant."""
        return self.shard(await self.shard_for(entity_id))

    def emit(self, topic: str, event: Event) -> None:
        """Record a durable event: written to the outbox with this transaction, relayed after commit."""
        if self._depth == 0:
            raise RuntimeError("events can only be recorded inside uow.atomic()")
        self._pending.append((topic, event))

    def announce(self, topic: str, event: Event) -> None:
        """Record an ephemeral event, published after commit and never replayed (typing indicators)."""
        if self._depth == 0:
            raise RuntimeError("events can only be recorded inside uow.atomic()")
        self._ephemeral.append((topic, event))

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this transaction has committed (never if it rolls back): the audit stream's
        log lines, which must name only changes that happened."""
        if self._depth == 0:
            raise RuntimeError("after_commit can only be used inside uow.atomic()")
        self._committed.append(callback)

    def atomic(self) -> AbstractAsyncContextManager[UnitOfWork]:
        if self._depth or not tracing.ACTIVE:
            return self._atomic()
        return self._traced_atomic()

    @asynccontextmanager
    async def _traced_atomic(self) -> AsyncIterator[UnitOfWork]:
        """The outermost transaction as a span (its statements, commit included, are its children)."""
        with tracing.tracer.start_as_current_span("transaction"):
            async with self._atomic() as uow:
                yield uow

    @asynccontextmanager
    async def _atomic(self) -> AsyncIterator[UnitOfWork]:
        self._depth += 1
        stores: set[int] = set()
        try:
            yield self
            if self._depth == 1:
                stores = await self._write_outbox()
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._pending.clear()
                self._ephemeral.clear()
                self._committed.clear()
                await self._rollback()
            raise
        self._depth -= 1
        if self._depth == 0:
            await self._commit()
            committed, self._committed = self._committed, []
            for callback in committed:
                callback()
            ephemeral, self._ephemeral = self._ephemeral, []
            if stores:
                ephemeral.append((outbox.WAKE_TOPIC, outbox.OutboxWritten(sorted(stores))))
            await self._publish(ephemeral)

    async def _publish(self, events: list[tuple[str, Event]]) -> None:
        for topic, event in events:
            try:
                await self.bus.publish(topic, event)
            except Exception:
                # The relay's periodic sweep still finds committed outbox rows; typing is best effort.
                log.warning("publishing after commit failed", extra={"topic": topic}, exc_info=True)

    async def _write_outbox(self) -> set[int]:
        pending, self._pending = self._pending, []
        await self._bump_access_versions(pending)
        by_store: dict[int, list[tuple[str, Event]]] = {}
        for topic, event in pending:
            by_store.setdefault(await self._store_of(topic), []).append((topic, event))
        for store, topic_events in by_store.items():
            session = self.directory() if store == outbox.DIRECTORY_STORE else self.shard(store)
            await outbox.write(session, store, topic_events)
        return set(by_store)

    async def _bump_access_versions(self, pending: list[tuple[str, Event]]) -> None:
        """Every server this transaction announces an access change of gets a new access version, in this
        transaction: processes that keep computed permissions (kernel/tenancy/access_versions.py) see the
        change with their next read, as an uncached check would. Last, after the change's own writes, so every
        writer takes these row locks in the same order."""
        changed = sorted({event.server_id for _, event in pending if isinstance(event, AccessChanged)})
        by_shard: dict[int, list[int]] = {}
        for server_id in changed:
            by_shard.setdefault(await self.shard_for(server_id), []).append(server_id)
        for shard, server_ids in sorted(by_shard.items()):
            await access_versions.bump(self.shard(shard), server_ids)

    async def _store_of(self, topic: str) -> int:
        """Every event of a topic goes to one store, so a topic's events are ordered by position: the
        shard of the channel or server it names, the directory for users and anything else."""
        kind, _, raw_id = topic.partition(":")
        if kind in ("channel", "server") and raw_id.isdigit():
            return await self.shard_for(int(raw_id))
        return outbox.DIRECTORY_STORE

    def _sessions(self) -> list[AsyncSession]:
        sessions = [self._directory] if self._directory is not None else []
        return sessions + list(self._shards.values())

    async def _commit(self) -> None:
        for session in self._sessions():
            await session.commit()
            session.info.pop(WRITING, None)  # what the request reads afterwards takes no lock

    async def _rollback(self) -> None:
        for session in self._sessions():
            await session.rollback()
            session.info.pop(WRITING, None)

    async def close(self) -> None:
        sessions = self._sessions()
        self._directory = None
        self._shards = {}
        self._located = {}  # a tenant may move between a subscription's events
        for session in sessions:
            await session.close()


# A write that reached the old copy of a moving tenant is retried this many times, twice as late each
# time: the move's directory commit follows its fence by milliseconds, but a loaded machine can stretch
# that (the waits add up to 1.55 s).
MOVED_RETRIES = 5
MOVED_BACKOFF_SECONDS = 0.05


async def retrying_moves(uow: UnitOfWork, operation: Callable[[], Awaitable[T]]) -> T:
    """Run `operation` in one transaction of `uow`. When the tenant moved shard under it (`TenantMoved`,
    raised by a fenced read: kernel/tenancy/access.py), start over on the new shard; after the last retry, the
    `TenantMoved` propagates."""
    for attempt in range(1, MOVED_RETRIES + 2):
        try:
            async with uow.atomic():
                return await operation()
        except TenantMoved as moved:
            log.info("the tenant moved shard under a write; retrying", extra={"server_id": moved.server_id})
            uow.database.locator.invalidate()
            await uow.close()  # forget the sessions and the shards located for the old copy
            if attempt > MOVED_RETRIES:
                raise
            await asyncio.sleep(MOVED_BACKOFF_SECONDS * 2 ** (attempt - 1))
    raise AssertionError("unreachable")
