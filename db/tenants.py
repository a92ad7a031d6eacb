"""The tenant directory: every server (a DM conversation too) and the logical shard that holds it."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, String, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import DirectoryBase
from db.ids import shard_of


class Tenant(DirectoryBase):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    shard: Mapped[int] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(16))  # SERVER | DM | GROUP_DM
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def choose_shard(logical_shards: int) -> int:
    """Place a new tenant. Uniformly random spreads load without coordination; rebalancing moves shards."""
    return secrets.randbelow(logical_shards)


async def register_tenant(session: AsyncSession, tenant_id: int, kind: str) -> Tenant:
    tenant = Tenant(id=tenant_id, shard=shard_of(tenant_id), kind=kind)
    session.add(tenant)
    return tenant


class Membership(DirectoryBase):
    """A user's membership of a server, indexed globally (the member row itself lives in the shard)."""

    __tablename__ = "memberships"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    server_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    joined_at: Mapped[datetime]


def index_membership(session: AsyncSession, user_id: int, server_id: int, joined_at: datetime) -> None:
    session.add(Membership(user_id=user_id, server_id=server_id, joined_at=joined_at))


async def unindex_membership(session: AsyncSession, user_id: int, server_id: int) -> None:
    await session.execute(
        delete(Membership).where(Membership.user_id == user_id, Membership.server_id == server_id)
    )


async def server_ids_of_user(session: AsyncSession, user_id: int) -> list[int]:
    """The user's servers, most recently joined first."""
    rows = await session.scalars(
        select(Membership.server_id)
        .where(Membership.user_id == user_id)
        .order_by(Membership.joined_at.desc(), Membership.server_id.desc())
    )
    return list(rows)
