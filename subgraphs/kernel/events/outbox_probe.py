"""Which stores have outbox work: one statement per physical database, for the relay's periodic sweep.

The sweep is the relay's safety net (a commit hint lost with Redis, a leader that died between numbering
and publishing, a consumer that failed). Visiting each of the 65 stores with its own transactions cost the
worker most of its CPU when idle (py-spy, bench/README.md); asking each physical database once which of
its stores have unnumbered rows, rows numbered but not published, or rows a consumer has not handled,
costs one round trip per database and lets the sweep visit only those stores.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from db.engines import Database
from subgraphs.kernel.events.outbox import DIRECTORY_STORE, tables_in_schema


def _store_has_work(store: int, schema: str | None, consumers: Sequence[str]) -> sa.Select[Any]:
    tables = tables_in_schema(schema)
    outbox, relay, progress = tables.outbox, tables.relay, tables.consumers
    published = sa.select(relay.c.published_through).where(relay.c.id == 1).scalar_subquery()
    conditions = [
        sa.exists().where(outbox.c.position.is_(None)),
        sa.exists().where(outbox.c.position > sa.func.coalesce(published, 0)),
    ]
    if consumers:
        # A consumer without a row yet is registered (at the published position) when the store is led.
        handled = sa.select(sa.func.min(progress.c.through)).where(progress.c.name.in_(consumers))
        conditions.append(sa.exists().where(outbox.c.position > handled.scalar_subquery()))
    return sa.select(sa.literal(store).label("store")).where(sa.or_(*conditions))


@lru_cache(maxsize=64)
def _probe(members: tuple[tuple[int, str | None], ...], consumers: tuple[str, ...]) -> sa.Executable:
    """One database's probe, built once per set of stores: building the union of 32 branches, and its
    cache key, was ~5% of the worker's CPU (py-spy); a reused statement's cache key is memoized."""
    branches = [_store_has_work(s, schema, consumers) for s, schema in members]
    return branches[0] if len(branches) == 1 else sa.union_all(*branches)


async def stores_with_work(database: Database, stores: Sequence[int], consumers: Sequence[str]) -> set[int]:
    """Of `stores`, those with events to number, to publish, or for a consumer to handle."""
    by_database: dict[str, list[tuple[int, str | None]]] = defaultdict(list)
    for store in stores:
        if store == DIRECTORY_STORE:
            by_database[database.directory_url].append((store, None))
        else:
            location = database.location(store)
            by_database[location.url].append((store, location.schema))
    found: set[int] = set()
    for url, members in by_database.items():
        statement = _probe(tuple(members), tuple(consumers))
        async with database.engine(url).connect() as conn:
            found.update(int(row.store) for row in await conn.execute(statement))
    return found
