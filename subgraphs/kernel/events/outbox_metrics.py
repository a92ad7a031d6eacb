"""The outbox's backlog and lag as Prometheus gauges, read from the stores when /metrics is scraped.

Per store: the events not yet published on the bus (`beep_outbox_backlog_events`) and the age of the
oldest of them (`beep_outbox_relay_lag_seconds`, 0 when there is none). Per durable consumer (search
indexing, link previews, notifications), over every store: the events it has not handled yet and the age
of the oldest. One statement per physical database (like kernel/events/outbox_probe.py), at most once per
`min_interval` seconds, and only when someone scrapes: an idle instance nobody monitors pays nothing.

Every worker reports the same numbers (they read the same tables): aggregate with `max by (store)`.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client import Gauge

from db.engines import Database
from subgraphs.kernel.events.outbox import DIRECTORY_STORE, tables_in_schema

BACKLOG = Gauge(
    "beep_outbox_backlog_events", "Committed outbox events not yet published on the bus.", ["store"]
)
RELAY_LAG = Gauge(
    "beep_outbox_relay_lag_seconds",
    "Age of the oldest committed outbox event not yet published (0: none waiting).",
    ["store"],
)
CONSUMER_BACKLOG = Gauge(
    "beep_outbox_consumer_backlog_events",
    "Published events a durable consumer has not handled yet, over every store.",
    ["consumer"],
)
CONSUMER_LAG = Gauge(
    "beep_outbox_consumer_lag_seconds",
    "Age of the oldest event a durable consumer has not handled yet (0: none waiting).",
    ["consumer"],
)


def store_label(store: int) -> str:
    return "directory" if store == DIRECTORY_STORE else str(store)


def _store_statement(store: int, schema: str | None, consumers: Sequence[str]) -> sa.Select[Any]:
    tables = tables_in_schema(schema)
    outbox, relay, progress = tables.outbox, tables.relay, tables.consumers
    published = sa.select(relay.c.published_through).where(relay.c.id == 1).scalar_subquery()
    unpublished = sa.or_(outbox.c.position.is_(None), outbox.c.position > sa.func.coalesce(published, 0))
    columns: list[Any] = [
        sa.literal(store).label("store"),
        sa.select(sa.func.count()).select_from(outbox).where(unpublished).scalar_subquery().label("n"),
        sa.select(sa.func.min(outbox.c.created_at)).where(unpublished).scalar_subquery().label("oldest"),
    ]
    for index, name in enumerate(consumers):
        through = sa.select(progress.c.through).where(progress.c.name == name).scalar_subquery()
        behind = outbox.c.position > through  # NULL (not registered yet): nothing counted
        columns += [
            sa.select(sa.func.count()).select_from(outbox).where(behind).scalar_subquery().label(f"n{index}"),
            sa.select(sa.func.min(outbox.c.created_at))
            .where(behind)
            .scalar_subquery()
            .label(f"oldest{index}"),
        ]
    return sa.select(*columns)


class OutboxGauges:
    """Refreshes the outbox gauges from the stores (kernel/metrics.py `add_refresher`)."""

    def __init__(
        self,
        database: Database,
        stores: Sequence[int],
        consumers: Sequence[str],
        *,
        min_interval: float = 10.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.database = database
        self.stores = list(stores)
        self.consumers = list(consumers)
        self.min_interval = min_interval
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._refreshed_at = float("-inf")
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:  # two scrapes at once read the stores once
            if self._clock() - self._refreshed_at < self.min_interval:
                return
            await self._read()
            self._refreshed_at = self._clock()

    async def _read(self) -> None:
        by_database: dict[str, list[tuple[int, str | None]]] = defaultdict(list)
        for store in self.stores:
            if store == DIRECTORY_STORE:
                by_database[self.database.directory_url].append((store, None))
            else:
                location = self.database.location(store)
                by_database[location.url].append((store, location.schema))
        now = datetime.now(UTC)
        consumer_backlog = dict.fromkeys(self.consumers, 0)
        consumer_oldest: dict[str, datetime | None] = dict.fromkeys(self.consumers)
        for url, members in by_database.items():
            branches = [_store_statement(s, schema, self.consumers) for s, schema in members]
            statement = branches[0] if len(branches) == 1 else sa.union_all(*branches)
            async with self.database.engine(url).connect() as conn:
                rows = (await conn.execute(statement)).mappings().all()
            for row in rows:
                label = store_label(int(row["store"]))
                BACKLOG.labels(label).set(row["n"] or 0)
                RELAY_LAG.labels(label).set(_age(now, row["oldest"]))
                for index, name in enumerate(self.consumers):
                    consumer_backlog[name] += row[f"n{index}"] or 0
                    consumer_oldest[name] = _earliest(consumer_oldest[name], row[f"oldest{index}"])
        for name in self.consumers:
            CONSUMER_BACKLOG.labels(name).set(consumer_backlog[name])
            CONSUMER_LAG.labels(name).set(_age(now, consumer_oldest[name]))


def _as_datetime(value: Any) -> datetime | None:
    """A union's columns lose their type on some backends (SQLite hands back text): parse it then."""
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _earliest(a: Any, b: Any) -> datetime | None:
    found = [d for d in (_as_datetime(a), _as_datetime(b)) if d is not None]
    return min(found) if found else None


def _age(now: datetime, oldest: Any) -> float:
    when = _as_datetime(oldest)
    return max(0.0, (now - when).total_seconds()) if when is not None else 0.0
