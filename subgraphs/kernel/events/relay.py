"""The outbox relay: positions committed outbox rows and publishes them on the bus, store by store.

One relay leads each store at a time (a lease in the store's `outbox_relay` row, renewed as it works), so
positions are handed out by one writer and published in order. Per round and store:

1. in one transaction: take or renew the lease, record how far the previous round published, give the
   rows without a position the next positions, and read the positioned rows past what is published (on
   PostgreSQL two statements: the relay row's lock, then one statement for the rest);
2. publish them, in order.

How far it published is recorded by the next round's transaction (under load, rounds follow each other:
one transaction per round, not two), or on its own as soon as the relay has nothing else to do. A relay
that dies before recording (or halfway through 2) leaves rows positioned but recorded as unpublished:
whoever leads next publishes them again, and subscribers drop what they have already seen
(kernel/events/outbox.py `Deduplicator`). Nothing committed is lost; a live event may arrive twice but is
delivered once.

Work is found two ways: the `OutboxWritten` hint each commit publishes (fast path), and a sweep of every
store every few seconds (after a crash, or a hint lost with Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.engines import Database
from subgraphs.kernel import tracing
from subgraphs.kernel.events import outbox
from subgraphs.kernel.events.bus import EventBus, SubscriberOverflow
from subgraphs.kernel.events.catalogue import ACCESS_TOPIC, Event, announces_access_change, decode, stamp
from subgraphs.kernel.events.outbox_probe import stores_with_work
from subgraphs.kernel.metrics import EVENTS_RELAYED

log = logging.getLogger("beep.relay")

Handler = Callable[[int, list[Event]], Awaitable[None]]


@dataclass(frozen=True)
class Consumer:
    """A durable reader of every store's events (at least once, in position order per store): it keeps
    its own progress in `outbox_consumers`, so a crashed consumer resumes where it stopped. Handlers must
    be idempotent."""

    name: str
    handle: Handler  # (store, events) -> None; raising retries the batch later


@dataclass(frozen=True)
class RelayConfig:
    batch_size: int = 500
    lease_seconds: float = 15.0
    sweep_seconds: float = 5.0
    retention_seconds: float = 86_400.0
    prune_every_seconds: float = 60.0
    # Every store is visited this often even without work, so an idle store's old events are pruned too.
    visit_all_seconds: float = 600.0
    # A consumer that handled more than one event per linger over the last second waits this long before
    # its next round, so that under load it takes runs of events (two transactions and one handler call
    # per run, not per event: its cost per event falls as load rises); a quieter one answers at once.
    consumer_linger_seconds: float = 0.25
    # The relay's own, much shorter (it is on the live path): above 40 events/s a round positions and
    # publishes the commits of several requests (two transactions per round, not per message); below,
    # each commit goes out at once. The worker takes both from its settings (BEEP_OUTBOX_*_LINGER_SECONDS).
    relay_linger_seconds: float = 0.025
    # A running consumer records its progress in the transaction that reads its next run of events, or
    # after this long without one: one transaction per run under load, not two. A worker that dies
    # meanwhile leaves that much handled again by its successor (consumers are at least once).
    consumer_record_seconds: float = 1.0


def relay_owner(port: int | None = None) -> str:
    """Who holds a store's lease. With the process's port it is stable across restarts (one process per
    port and host), so a worker restarted after a crash takes its leases back at once instead of waiting
    for them to lapse; without, it is unique to this process."""
    if port is not None:
        return f"{socket.gethostname()}:{port}"
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class _Positioned:
    leading: bool  # this relay holds the store's lease
    positioned: int  # rows it gave a position this round
    rows: list[_Row]  # past `published_through`, to publish


@dataclass(frozen=True)
class _Round:
    """What a relay round decided once it held the relay row (`OutboxRelay._position`)."""

    next_position: int
    published_through: int  # recorded, or what this relay published since (to record now)
    lease: datetime  # when the lease lapses, renewed or not
    must_write: bool  # the lease to renew or `published_through` to record: write even without new rows
    unsettled: bool  # read the rows past `published_through` even without new rows

    def advance(self, owner: str, positioned: int) -> dict[str, object]:
        """`advance_relay`'s parameters, once `positioned` rows were given positions."""
        return {
            "next": self.next_position + positioned,
            "owner": owner,
            "expires": self.lease,
            "published": self.published_through,
        }

    def in_one_statement(self, owner: str) -> dict[str, object]:
        """`position_and_read`'s parameters (it counts what it positions itself)."""
        return {
            **self.advance(owner, 0),
            "must_write": self.must_write,
            "after": self.published_through,
            "unsettled": self.unsettled,
        }


@dataclass(frozen=True)
class _Row:
    position: int
    topic: str
    payload: str
    trace_context: str | None  # the writing request's traceparent (kernel/tracing.py)


class RecentRate:
    """Events per second over the last whole second: whether rounds come faster than events do (then a
    round should linger so that it takes several)."""

    def __init__(self) -> None:
        self._second = 0
        self._count = 0  # in `_second`
        self._before = 0  # in the second before it

    def add(self, now: float, events: int) -> None:
        second = int(now)
        if second != self._second:
            self._before = self._count if second == self._second + 1 else 0
            self._second, self._count = second, 0
        self._count += events

    def per_second(self, now: float) -> int:
        second = int(now)
        if second == self._second:
            return max(self._before, self._count)
        return self._count if second == self._second + 1 else 0

    def lingers(self, now: float, linger: float) -> bool:
        """More than one event per `linger` over the last second."""
        return linger > 0 and self.per_second(now) * linger > 1


class OutboxRelay:
    def __init__(
        self,
        database: Database,
        bus: EventBus,
        *,
        stores: Sequence[int],
        config: RelayConfig | None = None,
        consumers: Sequence[Consumer] = (),
        owner: str | None = None,
    ) -> None:
        self.database = database
        self.bus = bus
        self.stores = list(stores)
        self.config = config or RelayConfig()
        self.consumers = list(consumers)
        self.owner = owner or relay_owner()
        self._dirty: set[int] = set(self.stores)
        self._hinted: set[int] = set()  # dirty because a commit hint named them: relayed first
        self._visit_all_at = 0.0  # loop time of the next round over every store (see RelayConfig)
        self._wake = asyncio.Event()
        self._pruned_at: dict[int, float] = {}
        self._settled: set[int] = set()  # stores this leader found fully published
        # Published through this position, not yet recorded as `published_through` (see the docstring).
        self._unrecorded: dict[int, int] = {}
        self._leading: set[int] = set()
        self._runners = [_ConsumerRunner(self, c) for c in self.consumers]
        self._relayed = RecentRate()

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._listen(), name="outbox-relay-hints")]
        # Each consumer in its own task: a slow one (link previews fetch the web) never holds up live
        # delivery or the other consumers.
        tasks += [
            asyncio.create_task(r.run(), name=f"outbox-consumer-{r.consumer.name}") for r in self._runners
        ]
        try:
            await self._loop()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _listen(self) -> None:
        """Follows the commit hints for as long as the relay runs. A burst of hints can overflow the
        subscription's queue: then every store is looked at and the subscription starts over, rather
        than the relay falling back to its sweep for good."""
        while True:
            try:
                async with self.bus.subscribe(outbox.WAKE_TOPIC) as hints:
                    self._dirty.update(self.stores)  # whatever was committed while (re)subscribing
                    self._wake.set()
                    async for hint in hints:
                        if isinstance(hint, outbox.OutboxWritten):
                            hinted = [s for s in hint.stores if s in self.stores]
                            self._dirty.update(hinted)
                            self._hinted.update(hinted)
                            self._wake.set()
            except SubscriberOverflow:
                log.warning("the relay fell behind its commit hints; looking at every store")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the relay lost its commit hints; subscribing again in 1 s")
                await asyncio.sleep(1)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self.config.sweep_seconds
        linger = self.config.relay_linger_seconds
        while True:
            if loop.time() >= next_sweep:
                await self._sweep()
                next_sweep = loop.time() + self.config.sweep_seconds
            if self._relayed.lingers(loop.time(), linger):
                await asyncio.sleep(linger)  # let concurrent commits gather
            dirty, self._dirty = self._dirty, set()
            self._wake.clear()
            for store in self._hinted_first(dirty):
                try:
                    if await self.relay_store(store):
                        self._dirty.add(store)  # a full batch: there may be more
                except Exception:
                    self._settled.discard(store)  # whatever it numbered is published at the next sweep
                    log.exception(
                        "relaying a store failed; retrying at the next sweep", extra={"store": store}
                    )
            if self._dirty:
                continue
            if self._unrecorded and not self._wake.is_set():
                await self.record_published()  # nothing else to do: record what the rounds published
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, next_sweep - loop.time()))

    async def _sweep(self) -> None:
        """The safety net behind commit hints: the stores with work (one query per physical database),
        and those this leader has not yet found settled (new, led by another, failed) get a round; the
        consumers look again at every store with work (one that failed retries here)."""
        try:
            found = await stores_with_work(self.database, self.stores, [c.name for c in self.consumers])
        except Exception:
            log.exception("the outbox sweep's probe failed; looking at every store")
            found = set(self.stores)
        now = asyncio.get_running_loop().time()
        if now >= self._visit_all_at:
            self._visit_all_at = now + self.config.visit_all_seconds
            self._dirty.update(self.stores)  # pruning happens in a store's round
        self._dirty.update(found | (set(self.stores) - self._settled))
        for store in found:
            for runner in self._runners:
                runner.poke(store)

    @property
    def leading(self) -> frozenset[int]:
        """The stores whose lease this relay holds (their consumers run here)."""
        return frozenset(self._leading)

    def _hinted_first(self, dirty: set[int]) -> Iterator[int]:
        """The stores to relay this round, those named by a commit hint first: live traffic does not wait
        behind a sweep of every store. A hint arriving meanwhile jumps the rest of the sweep."""
        pending = set(dirty)
        while pending or self._hinted:
            if self._hinted:
                store = min(self._hinted)
                self._hinted.discard(store)
                self._dirty.discard(store)  # relayed now, not again next round
            else:
                store = min(pending)
            pending.discard(store)
            yield store

    def _session(self, store: int) -> AsyncSession:
        if store == outbox.DIRECTORY_STORE:
            return self.database.directory_session()
        return self.database.shard_session(store)

    async def relay_store(self, store: int) -> bool:
        """One round for one store. True when a batch was full (call again)."""
        async with self._session(store) as session:
            found = await self._position(session, store, unsettled=store not in self._settled)
            if not found.leading:
                self._leading.discard(store)
                self._settled.discard(store)
                self._unrecorded.pop(store, None)  # the new leader publishes from what is recorded
                return False
            positioned = found.positioned
            newly_leading = store not in self._leading
            if newly_leading:
                await self._register_consumers(session, store)
                for runner in self._runners:
                    runner.forget(store)  # progress kept from an earlier lead: the database's is the truth
            self._leading.add(store)
            published = await self._publish(store, found.rows) if found.rows else 0
            self._relayed.add(asyncio.get_running_loop().time(), published)
            if positioned or published or newly_leading:
                self._settled.discard(store)
                for runner in self._runners:
                    runner.poke(store)
            else:  # nothing new since a round that found everything published
                self._settled.add(store)
            await self._maybe_prune(session, store)
        full = self.config.batch_size
        return positioned >= full or published >= full

    async def _register_consumers(self, session: AsyncSession, store: int) -> None:
        """A consumer new to this store starts after what is published so far, not at the start of the
        retained log; registered before this leader publishes anything, so it misses none of that."""
        t = outbox.tables_of(store)
        async with session.begin():
            through = await session.scalar(sa.select(t.relay.c.published_through).where(t.relay.c.id == 1))
            known = set(
                await session.scalars(
                    sa.select(t.consumers.c.name).where(
                        t.consumers.c.name.in_([c.name for c in self.consumers])
                    )
                )
            )
            missing = [c.name for c in self.consumers if c.name not in known]
            if missing:
                await session.execute(
                    sa.insert(t.consumers), [{"name": name, "through": through or 0} for name in missing]
                )

    async def consume_store(self, store: int, consumer: Consumer) -> int:
        """One batch of `store`'s events for `consumer`, its progress recorded; how many it handled (0
        when it failed)."""
        async with self._session(store) as session:
            handled, through = await self._consume(session, store, consumer, None)
            if through is not None:
                await self._record(session, store, consumer, through)
            return handled

    async def consume_batch(
        self, store: int, consumer: Consumer, unrecorded: int | None
    ) -> tuple[int, int | None]:
        """One batch for a running consumer: `unrecorded` (a previous batch's progress, handled but not
        yet recorded) is recorded in the transaction that reads this one. Returns how many it handled and
        its progress, to record (None: nothing new). Raises when the read failed: nothing was recorded."""
        async with self._session(store) as session:
            return await self._consume(session, store, consumer, unrecorded)

    async def record_progress(self, store: int, consumer: Consumer, through: int) -> None:
        async with self._session(store) as session:
            await self._record(session, store, consumer, through)

    async def _position(self, session: AsyncSession, store: int, *, unsettled: bool = True) -> _Positioned:
        """Take or renew the lease and position what was committed; in the same transaction, the
        positioned rows past `published_through` (when it positioned some, or the store is `unsettled`:
        not found fully published by this leader)."""
        t = outbox.tables_of(store)
        sql = _statements(t, self.config.batch_size)
        unrecorded = self._unrecorded.get(store)
        try:
            async with session.begin():
                # The relay row's lock is a statement of its own, before the numbering: under READ
                # COMMITTED a statement sees what was committed when it started, so a relay that waited
                # here for the previous leader's commit numbers rows in a later statement, which sees
                # that commit (numbering in the waiting statement could give a row a second position).
                state = (await session.execute(sql.relay_state)).first()
                # The lease is judged when the lock is held: a relay that waited here for a stalled
                # leader's commit takes over at once if that lease has lapsed meanwhile.
                now = datetime.now(UTC)
                lease = now + timedelta(seconds=self.config.lease_seconds)
                if state is None:
                    await session.execute(
                        sa.insert(t.relay).values(
                            id=1,
                            next_position=1,
                            published_through=0,
                            pruned_through=0,
                            lease_owner=self.owner,
                            lease_expires=lease,
                        )
                    )
                    next_position, published_through, renew = 1, 0, False
                else:
                    held_by_other = (
                        state.lease_owner not in (None, self.owner)
                        and state.lease_expires is not None
                        and state.lease_expires > now
                    )
                    if held_by_other:
                        return _Positioned(False, 0, [])
                    next_position, published_through = state.next_position, state.published_through
                    renew = (
                        state.lease_owner != self.owner
                        or state.lease_expires is None
                        or state.lease_expires < now + timedelta(seconds=self.config.lease_seconds / 2)
                    )
                    if state.lease_owner != self.owner:
                        unrecorded = None  # published while this relay led before: its successor republished
                        # Another relay led since (this one may have stalled): rows it positioned may be
                        # unpublished, whatever this relay last found.
                        unsettled = True
                if unrecorded is not None and unrecorded > published_through:
                    published_through = unrecorded
                else:
                    unrecorded = None
                this_round = _Round(
                    next_position,
                    published_through,
                    lease,
                    must_write=renew or unrecorded is not None,
                    unsettled=unsettled,
                )
                if _on_postgres(session):
                    positioned, rows = await self._position_in_one_statement(session, sql, this_round)
                else:
                    positioned, rows = await self._position_step_by_step(session, t, sql, this_round)
        except IntegrityError:  # another relay created the state row first: it leads
            return _Positioned(False, 0, [])
        self._unrecorded.pop(store, None)  # recorded now, or already, or stale (another relay led since)
        return _Positioned(True, positioned, rows)

    async def _position_in_one_statement(
        self, session: AsyncSession, sql: _Statements, this_round: _Round
    ) -> tuple[int, list[_Row]]:
        """PostgreSQL: numbers, advances the relay row and reads what to publish in one statement (after
        the lock: two statements per round where SQLite takes five)."""
        found = (await session.execute(sql.position_and_read, this_round.in_one_statement(self.owner))).all()
        rows = [_Row(r.position, r.topic, r.payload, r.trace_context) for r in found]
        # Every row carries the count; no row, no new one (new rows are always in the batch).
        return (found[0].positioned if found else 0), rows

    async def _position_step_by_step(
        self, session: AsyncSession, t: outbox.OutboxTables, sql: _Statements, this_round: _Round
    ) -> tuple[int, list[_Row]]:
        """SQLite (no UPDATE in a WITH): the numbering, the advance and the read, each a statement."""
        ids = (await session.scalars(sql.unpositioned)).all()
        if ids:
            await session.execute(
                sql.position_row,
                [{"row_id": i, "new_position": this_round.next_position + n} for n, i in enumerate(ids)],
            )
        if ids or this_round.must_write:
            await session.execute(sql.advance_relay, this_round.advance(self.owner, len(ids)))
        rows = (
            await self._rows_after(session, t, this_round.published_through)
            if ids or this_round.unsettled
            else []
        )
        return len(ids), rows

    async def _publish(self, store: int, rows: list[_Row]) -> int:
        """Publish positioned rows (read by `_position`), in order; how far is recorded later."""
        batch: list[tuple[str, str]] = []
        with tracing.relaying(store, [(r.position, r.topic, r.trace_context) for r in rows]) as relayed:
            for row in rows:
                try:
                    stamped = stamp(row.payload, store, row.position, relayed.get(row.position))
                except (ValueError, KeyError, TypeError):
                    log.error(
                        "skipped a malformed outbox row", extra={"store": store, "position": row.position}
                    )
                    continue
                batch.append((row.topic, stamped))
                if announces_access_change(row.payload):
                    batch.append((ACCESS_TOPIC, stamped))  # the routers' fan-out tiers (live_access.py)
            await self.bus.publish_encoded(batch)
        EVENTS_RELAYED.inc(len(rows))
        self._unrecorded[store] = rows[-1].position  # recorded by the next round, or when idle
        return len(rows)

    async def record_published(self) -> None:
        """Record how far each store is published (`published_through`), while this relay still leads it:
        what the loop does when it has nothing else to do."""
        for store, upto in list(self._unrecorded.items()):
            try:
                async with self._session(store) as session, session.begin():
                    await session.execute(
                        _statements(outbox.tables_of(store), self.config.batch_size).published_by,
                        {"owner": self.owner, "upto": upto},
                    )
            except Exception:
                log.exception("recording what the relay published failed", extra={"store": store})
                continue  # kept: the next round or idle moment records it
            if self._unrecorded.get(store) == upto:
                del self._unrecorded[store]

    async def _rows_after(
        self, session: AsyncSession, t: outbox.OutboxTables, through: int | None
    ) -> list[_Row]:
        """The next batch of positioned rows after `through`."""
        query = _statements(t, self.config.batch_size).rows_after
        return [
            _Row(r.position, r.topic, r.payload, r.trace_context)
            for r in await session.execute(query, {"after": through or 0})
        ]

    async def _consume(
        self, session: AsyncSession, store: int, consumer: Consumer, unrecorded: int | None
    ) -> tuple[int, int | None]:
        t = outbox.tables_of(store)
        sql = _statements(t, self.config.batch_size)
        async with session.begin():
            if unrecorded is not None:  # this process handled up to there: record it, read what follows
                await self._update_progress(session, t, consumer, unrecorded)
                through: int | None = unrecorded
            else:
                through = await session.scalar(sql.progress_of, {"consumer": consumer.name})
                if through is None:  # a new consumer starts from now, not from the whole retained log
                    through = await session.scalar(sql.published)
                    await session.execute(sa.insert(t.consumers).values(name=consumer.name, through=through))
            rows = await self._rows_after(session, t, through)
        if not rows:
            return 0, None
        events = []
        for row in rows:
            with contextlib.suppress(ValueError):
                events.append(outbox.stamped(decode(row.payload), store, row.position))
        try:
            # One event's consumption continues its trace; a batch's links to each event's.
            with tracing.covering(
                f"outbox.consume {consumer.name}", [r.trace_context for r in rows], store=store
            ):
                await consumer.handle(store, events)
        except Exception:
            log.exception(
                "an outbox consumer failed; it retries from the same place", extra={"consumer": consumer.name}
            )
            return 0, None
        return len(rows), rows[-1].position

    async def _record(self, session: AsyncSession, store: int, consumer: Consumer, through: int) -> None:
        async with session.begin():
            await self._update_progress(session, outbox.tables_of(store), consumer, through)

    async def _update_progress(
        self, session: AsyncSession, t: outbox.OutboxTables, consumer: Consumer, through: int
    ) -> None:
        """Progress only moves forward (a former leader's late write cannot take it back)."""
        await session.execute(
            _statements(t, self.config.batch_size).advance_consumer,
            {"consumer": consumer.name, "upto": through},
        )

    async def _maybe_prune(self, session: AsyncSession, store: int) -> None:
        """Deletes events older than the retention that everyone has seen: the relay and every consumer."""
        now = asyncio.get_running_loop().time()
        if now - self._pruned_at.get(store, float("-inf")) < self.config.prune_every_seconds:
            return
        self._pruned_at[store] = now
        t = outbox.tables_of(store)
        cutoff = datetime.now(UTC) - timedelta(seconds=self.config.retention_seconds)
        async with session.begin():
            seen = await session.scalar(sa.select(t.relay.c.published_through).where(t.relay.c.id == 1)) or 0
            seen = max(seen, self._unrecorded.get(store, 0))  # published, recorded a little later
            consumed = await session.scalar(
                sa.select(sa.func.min(t.consumers.c.through)).where(
                    t.consumers.c.name.in_([c.name for c in self.consumers])
                )
            )
            if consumed is not None:
                seen = min(seen, consumed)
            last = await session.scalar(
                sa.select(sa.func.max(t.outbox.c.position)).where(
                    t.outbox.c.position <= seen, t.outbox.c.created_at < cutoff
                )
            )
            if last is None:
                return
            await session.execute(sa.delete(t.outbox).where(t.outbox.c.position <= last))
            await session.execute(
                sa.update(t.relay)
                .where(t.relay.c.id == 1, t.relay.c.pruned_through < last)
                .values(pruned_through=last)
            )


@dataclass(frozen=True)
class _Statements:
    """A store kind's statements for the relay's and the consumers' rounds, built once: building them per
    round (coercing each comparison, then computing the statement's cache key) was ~10% of the worker's CPU
    in py-spy. Values go in as bound parameters (names unlike the columns', which UPDATE reserves)."""

    relay_state: Any  # the relay row, locked
    unpositioned: Any  # committed rows without a position, oldest first
    position_row: Any  # executemany: row_id, new_position
    advance_relay: Any  # next_position, owner, expires, published (published_through)
    published_by: Any  # published_through, while `owner` leads
    rows_after: Any  # (position, topic, payload) after `after`
    progress_of: Any  # a consumer's recorded progress (`consumer`)
    published: Any  # the relay's published_through
    advance_consumer: Any  # `consumer` to `upto`, only forwards
    # PostgreSQL: unpositioned + position_row + advance_relay + rows_after, as one statement
    position_and_read: Any


@lru_cache(maxsize=8)
def _statements(t: outbox.OutboxTables, batch_size: int) -> _Statements:
    relay, rows, consumers = t.relay, t.outbox, t.consumers
    return _Statements(
        relay_state=sa.select(relay).where(relay.c.id == 1).with_for_update(),
        unpositioned=sa.select(rows.c.id)
        .where(rows.c.position.is_(None))
        .order_by(rows.c.id)
        .limit(batch_size),
        position_row=sa.update(rows)
        .where(rows.c.id == sa.bindparam("row_id"))
        .values(position=sa.bindparam("new_position")),
        advance_relay=sa.update(relay)
        .where(relay.c.id == 1)
        .values(
            next_position=sa.bindparam("next"),
            lease_owner=sa.bindparam("owner"),
            lease_expires=sa.bindparam("expires"),
            published_through=sa.bindparam("published"),
        ),
        published_by=sa.update(relay)
        .where(relay.c.id == 1, relay.c.lease_owner == sa.bindparam("owner"))
        .values(published_through=sa.bindparam("upto")),
        rows_after=sa.select(rows.c.position, rows.c.topic, rows.c.payload, rows.c.trace_context)
        .where(rows.c.position > sa.bindparam("after"))
        .order_by(rows.c.position)
        .limit(batch_size),
        progress_of=sa.select(consumers.c.through).where(consumers.c.name == sa.bindparam("consumer")),
        published=sa.select(relay.c.published_through).where(relay.c.id == 1),
        advance_consumer=sa.update(consumers)
        .where(consumers.c.name == sa.bindparam("consumer"), consumers.c.through < sa.bindparam("upto"))
        .values(through=sa.bindparam("upto")),
        position_and_read=_position_and_read(t, batch_size),
    )


def _position_and_read(t: outbox.OutboxTables, batch_size: int) -> sa.Select[Any]:
    """A relay round's work after the lock, as one statement (PostgreSQL: SQLite has no UPDATE in a
    WITH): give the oldest rows without a position the positions from `next` on; advance the relay row
    when there were any, or when `must_write` (nothing changed: no write); select the batch to publish,
    the rows positioned earlier past `after` (when there were new ones, or `unsettled`) and the new ones,
    each with how many were positioned (`positioned`).

    The statement's snapshot predates its own UPDATEs: the new positions come from RETURNING, and the
    earlier rows' read cannot see them again. Every new position is at least `next`, past every earlier
    one, so the batch is in order."""
    rows, relay = t.outbox, t.relay
    first = sa.bindparam("next", type_=sa.BigInteger())
    todo = (
        sa.select(
            rows.c.id, (first + sa.func.row_number().over(order_by=rows.c.id) - 1).label("new_position")
        )
        .where(rows.c.position.is_(None))
        .order_by(rows.c.id)
        .limit(batch_size)
        .cte("todo")
    )
    count = sa.select(sa.func.count()).select_from(todo).scalar_subquery()
    positioned = (
        sa.update(rows)
        .where(rows.c.id == todo.c.id)
        .values(position=todo.c.new_position)
        .returning(rows.c.position, rows.c.topic, rows.c.payload, rows.c.trace_context)
        .cte("positioned")
    )
    advanced = (
        sa.update(relay)
        .where(relay.c.id == 1, sa.or_(sa.bindparam("must_write", type_=sa.Boolean()), count > 0))
        .values(
            next_position=first + count,  # from the rows it numbered, not those it updated: never twice
            lease_owner=sa.bindparam("owner"),
            lease_expires=sa.bindparam("expires"),
            published_through=sa.bindparam("published"),
        )
        .cte("advanced")
    )
    earlier = (
        sa.select(rows.c.position, rows.c.topic, rows.c.payload, rows.c.trace_context)
        .where(
            rows.c.position > sa.bindparam("after"),
            sa.or_(sa.bindparam("unsettled", type_=sa.Boolean()), count > 0),
        )
        .order_by(rows.c.position)
        .limit(batch_size)
        .subquery("earlier")
    )
    batch = sa.union_all(
        sa.select(earlier.c.position, earlier.c.topic, earlier.c.payload, earlier.c.trace_context),
        sa.select(
            positioned.c.position, positioned.c.topic, positioned.c.payload, positioned.c.trace_context
        ),
    ).subquery("batch")
    return (
        sa.select(batch, count.label("positioned"))
        .order_by(batch.c.position)
        .limit(batch_size)
        .add_cte(advanced)
    )


def _on_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


class _ConsumerRunner:
    """Feeds one consumer the stores its relay leads: when the relay has published something there, and
    at every sweep (a consumer that failed retries from its recorded progress)."""

    def __init__(self, relay: OutboxRelay, consumer: Consumer) -> None:
        self.relay = relay
        self.consumer = consumer
        self._dirty: set[int] = set()
        self._wake = asyncio.Event()
        self._unrecorded: dict[int, int] = {}  # store -> handled through, not recorded yet

    def poke(self, store: int) -> None:
        self._dirty.add(store)
        self._wake.set()

    def forget(self, store: int) -> None:
        """Progress kept for a store this relay (again) starts to lead: the recorded one stands."""
        self._unrecorded.pop(store, None)

    async def run(self) -> None:
        """Handles the stores it is poked for: by the relay when it publishes or first leads a store, and
        by the relay's sweep for every store where a consumer is behind (so a failed batch is retried)."""
        loop = asyncio.get_running_loop()
        config = self.relay.config
        handled_recently = RecentRate()
        while True:
            if handled_recently.lingers(loop.time(), config.consumer_linger_seconds):
                await asyncio.sleep(config.consumer_linger_seconds)  # let a run of events gather
            dirty, self._dirty = self._dirty, set()
            self._wake.clear()
            leading = self.relay.leading
            for store in set(self._unrecorded) - leading:  # led elsewhere now: its leader goes on from
                del self._unrecorded[store]  # the recorded progress (a run may be handled twice)
            for store in sorted(dirty & leading):
                try:
                    handled, through = await self.relay.consume_batch(
                        store, self.consumer, self._unrecorded.get(store)
                    )
                except Exception:
                    log.exception("an outbox consumer round failed", extra={"consumer": self.consumer.name})
                    continue
                self._unrecorded.pop(store, None)  # recorded by that batch's read
                if through is not None:
                    self._unrecorded[store] = through
                handled_recently.add(loop.time(), handled)
                if handled >= config.batch_size:
                    self._dirty.add(store)
            if self._dirty:
                continue
            if not self._unrecorded:
                await self._wake.wait()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=config.consumer_record_seconds)
            if not self._wake.is_set():
                await self._record_all()  # no next run came to carry it

    async def _record_all(self) -> None:
        for store, through in sorted(self._unrecorded.items()):
            try:
                await self.relay.record_progress(store, self.consumer, through)
            except Exception:
                log.exception(
                    "recording a consumer's progress failed", extra={"consumer": self.consumer.name}
                )
                continue
            if self._unrecorded.get(store) == through:
                del self._unrecorded[store]
