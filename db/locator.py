"""Where a tenant's rows are: the shard an ID was minted in, unless its tenant has been moved since.

IDs carry the logical shard they were minted in (their home), so routing needs no lookup — until a
tenant moves to another shard (`beep tenants move`). A moved tenant keeps every ID (clients, links,
cursors and replies stay valid); the directory's `relocations` table records where the rows of IDs
minted elsewhere went. Only IDs whose home shard has ever had a tenant moved out can need that lookup,
and that set of shards is tiny and cached, so the common path stays arithmetic.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import DirectoryBase
from db.ids import shard_of


class TenantMove(DirectoryBase):
    """One move of a tenant between logical shards (the journal `beep tenants move` keeps)."""

    __tablename__ = "tenant_moves"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(BigInteger, index=True)
    from_shard: Mapped[int] = mapped_column(Integer, index=True)
    to_shard: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))  # COPYING | SWITCHED | DONE | FAILED
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class Relocation(DirectoryBase):
    """A row of a moved tenant whose ID names another shard than the one holding it now."""

    __tablename__ = "relocations"

    entity_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    tenant_id: Mapped[int] = mapped_column(BigInteger, index=True)
    shard: Mapped[int] = mapped_column(Integer)


class ShardLocator:
    """Per process: the cached set of home shards tenants have moved out of, refreshed every few
    seconds and at once when told (`invalidate`, on a move's announcement or a write refused by a
    moved tenant's fence)."""

    def __init__(self, refresh_seconds: float = 2.0) -> None:
        self._refresh_seconds = refresh_seconds
        self._forwarded: frozenset[int] = frozenset()
        self._loaded_at = float("-inf")

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")

    async def forwarded_shards(self, directory: AsyncSession) -> frozenset[int]:
        if time.monotonic() - self._loaded_at >= self._refresh_seconds:
            rows = await directory.scalars(select(TenantMove.from_shard).distinct())
            self._forwarded = frozenset(rows)
            self._loaded_at = time.monotonic()
        return self._forwarded

    async def locate(self, directory: AsyncSession, ids: Iterable[int]) -> dict[int, int]:
        """The shard holding each ID's row (its home shard unless its tenant was moved)."""
        wanted = list(dict.fromkeys(ids))
        located = {entity_id: shard_of(entity_id) for entity_id in wanted}
        forwarded = await self.forwarded_shards(directory)
        maybe_moved = [entity_id for entity_id in wanted if located[entity_id] in forwarded]
        if maybe_moved:
            rows = await directory.execute(
                select(Relocation.entity_id, Relocation.shard).where(Relocation.entity_id.in_(maybe_moved))
            )
            located.update({row.entity_id: row.shard for row in rows})
        return located
