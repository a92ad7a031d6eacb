"""The transactional outbox: every durable event is a row written in the transaction of the change.

Each store (every logical shard, and the directory for user-level events) keeps an `outbox` table. The
relay (kernel/events/relay.py, one leader per store) gives committed rows their `position` — a gap-free,
increasing number per store, in the order the relay saw them — commits, then publishes them on the bus.
Because positions are handed out by a single writer after commit, a reader that subscribes first and then
reads every row past its cursor sees each event exactly once: rows it read are dropped when they also arrive
live (same or lower position), and rows positioned after its read arrive live.

A cursor is `store:position`. Events of one topic always go to one store (the store of the topic's
entity), so a topic's events are totally ordered by position.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import SHARD_SCHEMA, DirectoryBase, ShardBase, UtcDateTime
from subgraphs.kernel.errors import BeepGraphQLError, TopLevelCode, bad_user_input
from subgraphs.kernel.events.catalogue import Event, decode, encode
from subgraphs.kernel.tracing import current_traceparent

DIRECTORY_STORE = -1  # the directory's outbox; logical shards are 0..N-1
WAKE_TOPIC = "outbox:wake"


@dataclass(frozen=True)
class OutboxWritten(Event):
    """A hint to the relay that these stores have new rows (it also sweeps every store now and then)."""

    stores: list[int]


@dataclass(frozen=True)
class OutboxTables:
    outbox: sa.Table
    relay: sa.Table  # one row: the next position, what is published, the relay's lease, what is pruned
    consumers: sa.Table  # durable consumers' progress (notifications, search indexing)


def _tables(metadata: sa.MetaData, schema: str | None) -> OutboxTables:
    outbox = sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        # The writing request's W3C traceparent (kernel/tracing.py); null when it was not traced.
        sa.Column("trace_context", sa.String(55), nullable=True),
        # Replay walks one topic by position; the relay finds rows without a position.
        sa.Index("ix_outbox_topic_position", "topic", "position"),
        sa.Index("ix_outbox_position", "position", unique=True),
        schema=schema,
    )
    relay = sa.Table(
        "outbox_relay",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("next_position", sa.BigInteger(), nullable=False),
        sa.Column("published_through", sa.BigInteger(), nullable=False),
        sa.Column("pruned_through", sa.BigInteger(), nullable=False),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_expires", UtcDateTime(), nullable=True),
        schema=schema,
    )
    consumers = sa.Table(
        "outbox_consumers",
        metadata,
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("through", sa.BigInteger(), nullable=False),
        schema=schema,
    )
    return OutboxTables(outbox, relay, consumers)


SHARD_TABLES = _tables(ShardBase.metadata, SHARD_SCHEMA)
DIRECTORY_TABLES = _tables(DirectoryBase.metadata, None)


def tables_of(store: int) -> OutboxTables:
    return DIRECTORY_TABLES if store == DIRECTORY_STORE else SHARD_TABLES


@dataclass(frozen=True)
class QualifiedTables:
    outbox: sa.TableClause
    relay: sa.TableClause
    consumers: sa.TableClause


@cache
def tables_in_schema(schema: str | None) -> QualifiedTables:
    """The outbox tables of one physical schema, for a statement that reads many stores of a database at
    once (the relay's probe, the gauges), where `schema_translate_map` can name only one: views of the
    declarations above, their columns and types taken from them."""

    def qualified(table: sa.Table) -> sa.TableClause:
        return sa.table(table.name, *(sa.column(c.name, c.type) for c in table.columns), schema=schema)

    return QualifiedTables(
        qualified(SHARD_TABLES.outbox), qualified(SHARD_TABLES.relay), qualified(SHARD_TABLES.consumers)
    )


@dataclass(frozen=True, order=True)
class Cursor:
    """Where a reader of a topic is: the last position it has seen in the topic's store."""

    store: int
    position: int

    def __str__(self) -> str:
        return f"{self.store}:{self.position}"

    @classmethod
    def parse(cls, raw: str, argument: str = "after") -> Cursor:
        store, sep, position = raw.partition(":")
        try:
            if sep != ":" or len(raw) > 40:
                raise ValueError(raw)
            cursor = cls(int(store), int(position))
        except ValueError:
            raise bad_user_input("Not a cursor from this API.", argument) from None
        if cursor.store < DIRECTORY_STORE or cursor.position < 0:
            raise bad_user_input("Not a cursor from this API.", argument)
        return cursor

    @classmethod
    def of(cls, event: Event) -> Cursor | None:
        if event.outbox_store is None or event.outbox_position is None:
            return None
        return cls(event.outbox_store, event.outbox_position)


def stamped(event: Event, store: int, position: int) -> Event:
    return dataclasses.replace(event, outbox_store=store, outbox_position=position)


def rows_for(topic_events: Sequence[tuple[str, Event]]) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    traceparent = current_traceparent()
    return [
        {"topic": topic, "payload": encode(event), "created_at": now, "trace_context": traceparent}
        for topic, event in topic_events
    ]


async def write(session: AsyncSession, store: int, topic_events: Sequence[tuple[str, Event]]) -> None:
    """Record events in the transaction of `session` (they become visible, and are relayed, at commit)."""
    if topic_events:
        await session.execute(sa.insert(tables_of(store).outbox), rows_for(topic_events))


async def head(session: AsyncSession, store: int) -> Cursor:
    """The store's newest positioned event: resuming from here misses nothing committed later."""
    relay = tables_of(store).relay
    next_position = await session.scalar(sa.select(relay.c.next_position).where(relay.c.id == 1))
    return Cursor(store, (next_position or 1) - 1)


async def published(session: AsyncSession, store: int) -> Cursor:
    """The store's newest event the relay has recorded as published: every event after it is published
    later, or was published but not yet recorded (so replaying from here misses nothing published from
    now on, and may repeat a few events published just before)."""
    relay = tables_of(store).relay
    through = await session.scalar(sa.select(relay.c.published_through).where(relay.c.id == 1))
    return Cursor(store, through or 0)


async def replay(session: AsyncSession, topic: str, after: Cursor, *, limit: int = 500) -> list[Event]:
    """Events of `topic` positioned after `after`, oldest first (at most `limit`). Raises CURSOR_EXPIRED
    when events after the cursor have been pruned (older than the retention): reload instead."""
    t = tables_of(after.store)
    pruned = await session.scalar(sa.select(t.relay.c.pruned_through).where(t.relay.c.id == 1))
    if pruned is not None and after.position < pruned:
        raise BeepGraphQLError(
            "Events this old are no longer kept: reload the history, then resume from its cursor.",
            TopLevelCode.CURSOR_EXPIRED,
        )
    rows = (
        await session.execute(
            sa.select(t.outbox.c.position, t.outbox.c.payload)
            .where(t.outbox.c.topic == topic, t.outbox.c.position > after.position)
            .order_by(t.outbox.c.position)
            .limit(limit)
        )
    ).all()
    return [stamped(decode(payload), after.store, position) for position, payload in rows]


class Deduplicator:
    """Drops what a reader has already seen: an event at or before its cursor in the same store.

    An event from another store (the tenant moved to another shard) starts a new sequence."""

    def __init__(self, cursor: Cursor | None) -> None:
        self.cursor = cursor

    def fresh(self, event: Event) -> bool:
        cursor = Cursor.of(event)
        if cursor is None:
            return True  # ephemeral (typing, presence): never replayed, never duplicated
        if self.cursor is not None and cursor.store == self.cursor.store and cursor <= self.cursor:
            return False
        self.cursor = cursor
        return True
