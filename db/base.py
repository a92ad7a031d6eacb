"""Declarative bases: one for the directory database, one for tables that live in every tenant shard.

Shard tables are declared in the placeholder schema `shard`; each session translates it to the real
schema of its logical shard (`shard_07` on PostgreSQL, the file's own main schema on SQLite), so one
mapping serves every shard and a session can only ever reach its own shard's tables.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Dialect, MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

SHARD_SCHEMA = "shard"

_naming = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite hands back naive datetimes otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime; use datetime.now(UTC)")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class DirectoryBase(DeclarativeBase):
    metadata = MetaData(naming_convention=_naming)
    type_annotation_map = {int: BigInteger, datetime: UtcDateTime}


class ShardBase(DeclarativeBase):
    metadata = MetaData(schema=SHARD_SCHEMA, naming_convention=_naming)
    type_annotation_map = {int: BigInteger, datetime: UtcDateTime}
