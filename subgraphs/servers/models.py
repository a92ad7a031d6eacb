"""Tables owned by the servers context (tenant shard)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from db.base import ShardBase


class ServerRow(ShardBase):
    __tablename__ = "servers"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    visibility: Mapped[str] = mapped_column(String(16))  # PUBLIC | PRIVATE
    kind: Mapped[str] = mapped_column(String(16), default="SERVER")  # SERVER | DM
    owner_id: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class MemberRow(ShardBase):
    __tablename__ = "members"

    server_id: Mapped[int] = mapped_column(
        ForeignKey("shard.servers.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(primary_key=True, index=True)
    joined_at: Mapped[datetime] = mapped_column(server_default=func.now())
