"""Tables owned by the channels context (tenant shard)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from db.base import ShardBase


class ChannelRow(ShardBase):
    __tablename__ = "channels"
    __table_args__ = (Index("ix_channels_server_position", "server_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    # The foreign keys to other contexts' tables live in the migrations only: declaring them here would
    # make this process import those contexts' models.
    server_id: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # TEXT | VOICE | FOLDER
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("shard.channels.id", ondelete="SET NULL"))
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
