"""The tenant directory: every server (a DM conversation too) and the logical shard that holds it."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import DateTime, String, func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import DirectoryBase
from db.ids import shard_of


class Tenant(DirectoryBase):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    shard: Mapped[int] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(16))  # SERVER | DM
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def choose_shard(logical_shards: int) -> int:
    """Place a new tenant. Uniformly random spreads load without coordination; rebalancing moves shards."""
    return secrets.randbelow(logical_shards)


async def register_tenant(session: AsyncSession, tenant_id: int, kind: str) -> Tenant:
    tenant = Tenant(id=tenant_id, shard=shard_of(tenant_id), kind=kind)
    session.add(tenant)
    return tenant
