"""Make the target copy of a tenant equal to the source copy: compare, then delete, insert and update.

One routine serves the bulk copy (the target is empty: everything is inserted), the catch-up under the
switch's lock (only what changed since) and the verification (nothing may differ). Rows are compared by
primary key and a digest: on PostgreSQL `md5(ROW(columns)::text)` computed by the database, so the
comparison moves a key and 32 characters per row rather than the row (a cheap delta under the lock); on
SQLite, which has no md5, the row itself is the digest.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from db.tenant_move.plan import ARRIVING, MovePlan, TablePlan, parents_first_rows

Key = tuple[Any, ...]
T = TypeVar("T")


@dataclass
class TableDiff:
    plan: TablePlan
    source: dict[Key, Any]  # key -> digest
    target: dict[Key, Any]

    @property
    def missing(self) -> list[Key]:
        return sorted(k for k in self.source if k not in self.target)

    @property
    def changed(self) -> list[Key]:
        return sorted(k for k, d in self.source.items() if k in self.target and self.target[k] != d)

    @property
    def extra(self) -> list[Key]:
        return sorted(k for k in self.target if k not in self.source)

    @property
    def equal(self) -> bool:
        return self.source == self.target


@dataclass
class SyncResult:
    inserted: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)  # rows of the tenant in the source, per table
    # The source's digests as compared: the target's state once applied, if the source was locked.
    digests: dict[str, dict[Key, Any]] = field(default_factory=dict)

    @property
    def changes(self) -> int:
        return sum(self.inserted.values()) + sum(self.updated.values()) + sum(self.deleted.values())


def tenant_rows(plan: MovePlan, table: TablePlan, tenant_id: int) -> sa.ColumnElement[bool]:
    """The WHERE clause selecting one tenant's rows of a table."""
    columns = table.table.c
    if table.scope == "tenant":
        return columns.id == tenant_id
    if table.scope == "server_id":
        return columns.server_id == tenant_id
    channels = plan.table("channels").table
    return columns.channel_id.in_(sa.select(channels.c.id).where(channels.c.server_id == tenant_id))


def _compared_columns(table: TablePlan) -> list[sa.Column[Any]]:
    return [c for c in table.table.columns if c.name not in table.reset]


def _has_md5(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


async def digests(conn: AsyncConnection, plan: MovePlan, table: TablePlan, tenant_id: int) -> dict[Key, Any]:
    key = table.key
    if _has_md5(conn):
        row = sa.func.md5(sa.cast(sa.func.row(*_compared_columns(table)), sa.Text))
        query = sa.select(*key, row).where(tenant_rows(plan, table, tenant_id))
        return {tuple(r[: len(key)]): r[len(key)] for r in await conn.execute(query)}
    compared = _compared_columns(table)
    query = sa.select(*key, *compared).where(tenant_rows(plan, table, tenant_id))
    return {tuple(r[: len(key)]): tuple(r[len(key) :]) for r in await conn.execute(query)}


Digests = dict[str, dict[Key, Any]]  # table -> key -> digest


async def all_digests(conn: AsyncConnection, plan: MovePlan, tenant_id: int) -> Digests:
    return {t.name: await digests(conn, plan, t, tenant_id) for t in plan.tables}


async def keys(conn: AsyncConnection, plan: MovePlan, tenant_id: int) -> dict[str, set[Key]]:
    """Per table, the keys of the tenant's rows (what verification compares: counts and key sets)."""
    found = {}
    for table in plan.tables:
        rows = await conn.execute(sa.select(*table.key).where(tenant_rows(plan, table, tenant_id)))
        found[table.name] = {tuple(r) for r in rows}
    return found


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _key_in(table: TablePlan, keys: Sequence[Key]) -> sa.ColumnElement[bool]:
    if len(table.key) == 1:
        return table.key[0].in_([k[0] for k in keys])
    return sa.tuple_(*table.key).in_(list(keys))


async def sync(
    source: AsyncConnection,
    target: AsyncConnection,
    plan: MovePlan,
    tenant_id: int,
    *,
    batch_size: int,
    target_digests: Digests | None = None,
) -> SyncResult:
    """Bring the target's rows of the tenant to the source's (within the callers' transactions).

    `target_digests`: the target's digests when the caller knows them (the target is written by the
    mover alone before the switch), saving a scan."""
    known = target_digests if target_digests is not None else await all_digests(target, plan, tenant_id)
    diffs = [TableDiff(t, await digests(source, plan, t, tenant_id), known[t.name]) for t in plan.tables]
    result = SyncResult()
    for diff in reversed(diffs):  # children first
        extra = diff.extra
        for batch in batches(extra, batch_size):
            await target.execute(sa.delete(diff.plan.table).where(_key_in(diff.plan, batch)))
        result.deleted[diff.plan.name] = len(extra)
    for diff in diffs:  # parents first
        table = diff.plan
        missing, changed = diff.missing, diff.changed
        present = _present_parents(table, [k for k in diff.target if k in diff.source])
        for batch in batches(missing, batch_size):
            rows = await _source_rows(source, table, batch)
            await target.execute(
                table.table.insert(), parents_first_rows(rows, table.parent_columns, present)
            )
            present.update(_parent_values(table, rows))
        for batch in batches(changed, batch_size):
            for row in await _source_rows(source, table, batch):
                match = sa.and_(*(c == row[c.name] for c in table.key))
                await target.execute(sa.update(table.table).where(match).values(row))
        result.inserted[table.name], result.updated[table.name] = len(missing), len(changed)
        result.rows[table.name] = len(diff.source)
        result.digests[table.name] = diff.source
    return result


async def _source_rows(
    source: AsyncConnection, table: TablePlan, keys: Sequence[Key]
) -> list[dict[str, Any]]:
    rows = [
        dict(r._mapping) for r in await source.execute(sa.select(table.table).where(_key_in(table, keys)))
    ]
    for row in rows:
        row.update(dict.fromkeys(table.reset, ARRIVING))
    return rows


def _present_parents(table: TablePlan, target_keys: list[Key]) -> set[Any]:
    """Referenced values already in the target (a self-reference to the table's own one-column key)."""
    if table.parent_columns and len(table.key) == 1:
        return {k[0] for k in target_keys}
    return set()


def _parent_values(table: TablePlan, rows: list[dict[str, Any]]) -> set[Any]:
    return {row[referenced] for row in rows for _, referenced in table.parent_columns}


async def delete_tenant(
    conn: AsyncConnection, plan: MovePlan, tenant_id: int, *, batch_size: int
) -> dict[str, int]:
    """Delete one tenant's rows from a shard, children first, committing after every batch (short
    transactions: the shard's other tenants keep writing meanwhile)."""
    deleted: dict[str, int] = {}
    for table in reversed(plan.tables):
        count = 0
        while True:
            keys = (
                await conn.execute(
                    sa.select(*table.key).where(tenant_rows(plan, table, tenant_id)).limit(batch_size)
                )
            ).all()
            if not keys:
                break
            await conn.execute(sa.delete(table.table).where(_key_in(table, [tuple(k) for k in keys])))
            count += len(keys)
            await conn.commit()
        deleted[table.name] = count
    return deleted
