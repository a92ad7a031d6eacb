"""What moving a tenant touches: every shard table, how its rows are found, and in which order.

The plan is built from the shard's real tables (reflected from the database, so a table added by a
migration but not yet mapped by a model is still moved), never from a hand-kept list:

- `servers` holds the tenant itself (`id` = the tenant's id);
- a table with a `server_id` column holds the tenant's rows by that column;
- a table with a `channel_id` column and no `server_id` (per-channel tables such as overwrites), or with
  both but an index only on `channel_id` (messages), holds the rows of the tenant's channels;
- any other table is one the mover does not know how to move: planning fails, loudly, before anything
  is copied (a unit test migrates a shard and plans it, so a new table without either column fails CI).

Tables are copied parents first (foreign keys between tables) and deleted children first. A table whose
foreign key names itself (a channel's folder) is copied parents-first row by row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from db.base import SHARD_SCHEMA

TENANT_TABLE = "servers"
# Not tenant data: the shard's event log stays behind and is relayed from here (kernel/events/outbox.py).
IGNORED_TABLES = frozenset(
    {"alembic_version", "outbox", "outbox_relay", "outbox_consumers"}
    # SQLite's FTS5 index of search documents (s0080) and its shadow tables: triggers fill it from
    # search_documents, which moves like any tenant table.
    | {f"search_fts{suffix}" for suffix in ("", "_data", "_idx", "_content", "_docsize", "_config")}
)
# Fence columns: not compared, and not copied. The copy holds ARRIVING until the switch makes it live
# (NULL), and the old copy then gets the new shard: only a live copy has NULL, so a scan over every
# shard (discovery) can skip the other copy while a tenant moves.
RESET_COLUMNS: dict[str, frozenset[str]] = {TENANT_TABLE: frozenset({"moved_to"})}
ARRIVING = -1


class MoveError(Exception):
    """A move that cannot (or must not) proceed; the message says why and what to do."""


@dataclass(frozen=True)
class TablePlan:
    table: sa.Table  # in the placeholder schema, so it follows each session's shard translation
    scope: str  # "tenant" (servers.id) | "server_id" | "channel_id"
    parent_columns: tuple[tuple[str, str], ...]  # (column, referenced column) of a self-reference
    reset: frozenset[str]

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def key(self) -> tuple[sa.Column[object], ...]:
        return tuple(self.table.primary_key.columns)

    @property
    def relocatable(self) -> bool:
        """Rows found by their own ID (through the locator): those IDs need a relocation entry."""
        return [c.name for c in self.key] == ["id"]


@dataclass(frozen=True)
class MovePlan:
    tables: tuple[TablePlan, ...]  # parents first

    def table(self, name: str) -> TablePlan:
        return next(t for t in self.tables if t.name == name)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tables]


def plan_tables(metadata: sa.MetaData) -> MovePlan:
    """The move plan of a shard's tables (reflected or declared, in any schema)."""
    placeholder = sa.MetaData(schema=SHARD_SCHEMA)
    tables = {t.name: t for t in metadata.tables.values() if t.name not in IGNORED_TABLES}
    if TENANT_TABLE not in tables:
        raise MoveError(f"the shard has no {TENANT_TABLE!r} table: is it migrated?")
    plans: dict[str, TablePlan] = {}
    for name, table in tables.items():
        columns = set(table.columns.keys())
        if name == TENANT_TABLE:
            scope = "tenant"
        elif "server_id" in columns and (_leads_index(table, "server_id") or "channel_id" not in columns):
            scope = "server_id"
        elif "channel_id" in columns:
            # Also for a table with both columns when only channel_id is indexed (messages): the tenant's
            # rows are then found through its channels by index, not by scanning the shard's table.
            scope = "channel_id"
        else:
            raise MoveError(
                f"shard table {name!r} has neither a server_id nor a channel_id column: "
                "the tenant mover does not know which of its rows belong to a tenant"
            )
        if not table.primary_key.columns:
            raise MoveError(f"shard table {name!r} has no primary key: its rows cannot be compared")
        parents = tuple(
            (fk.parent.name, fk.column.name) for fk in table.foreign_keys if fk.column.table.name == name
        )
        copy = sa.Table(
            name, placeholder, *(sa.Column(c.name, c.type, primary_key=c.primary_key) for c in table.columns)
        )
        plans[name] = TablePlan(copy, scope, parents, RESET_COLUMNS.get(name, frozenset()))
    if "channel_id" in {p.scope for p in plans.values()} and "channels" not in plans:
        raise MoveError("per-channel tables exist but the shard has no 'channels' table")
    depends_on = {
        name: {fk.column.table.name for fk in table.foreign_keys} - {name} for name, table in tables.items()
    }
    for name, found in plans.items():
        if found.scope == "channel_id":  # found through channels: copied after it, deleted before it
            depends_on[name].add("channels")
    order = _parents_first(depends_on)
    return MovePlan(tuple(plans[name] for name in order))


def _leads_index(table: sa.Table, column: str) -> bool:
    """Whether an index (or the primary key) of the table starts with this column."""
    leading = [list(index.columns)[:1] for index in table.indexes] + [list(table.primary_key.columns)[:1]]
    return any(first and first[0].name == column for first in leading)


def _parents_first(depends_on: dict[str, set[str]]) -> list[str]:
    """Topological order (Kahn), ties broken by name so the plan is the same on every run."""
    pending = {name: set(deps) & depends_on.keys() for name, deps in depends_on.items()}
    order: list[str] = []
    while pending:
        ready = sorted(name for name, deps in pending.items() if not deps)
        if not ready:
            raise MoveError(f"foreign keys form a cycle between shard tables {sorted(pending)}")
        for name in ready:
            order.append(name)
            del pending[name]
        for deps in pending.values():
            deps.difference_update(ready)
    return order


def parents_first_rows(
    rows: Iterable[dict[str, object]], parent_columns: tuple[tuple[str, str], ...], present: set[object]
) -> list[dict[str, object]]:
    """Rows of a self-referencing table ordered so a row's parent is inserted before it. `present` holds
    the referenced values already in the target."""
    remaining = list(rows)
    if not parent_columns:
        return remaining
    ordered: list[dict[str, object]] = []
    known = set(present)
    while remaining:
        ready = [
            row
            for row in remaining
            if all(row[column] is None or row[column] in known for column, _ in parent_columns)
        ]
        if not ready:  # a parent outside the tenant or a cycle: let the database say which
            ready = remaining
        for row in ready:
            ordered.append(row)
            known.update(row[referenced] for _, referenced in parent_columns)
        ready_ids = {id(row) for row in ready}
        remaining = [row for row in remaining if id(row) not in ready_ids]
    return ordered


def check_target(current_shard: int, target: int, logical_shards: int) -> None:
    """The argument rules: a target inside the configured shards, and not where the tenant already is."""
    if not 0 <= target < logical_shards:
        raise MoveError(f"shard {target} is out of range: this deployment has shards 0-{logical_shards - 1}")
    if target == current_shard:
        raise MoveError(f"the tenant is already on shard {target}")
