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
    topic: Mapped[str | None] = mapped_column(String(1024), default=None)
    kind: Mapped[str] = mapped_column(String(16))  # TEXT | VOICE | FOLDER
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("shard.channels.id", ondelete="SET NULL"))
    position: Mapped[int] = mapped_column(default=0)
    # In a folder and synced: the folder's overwrites apply. Setting its own overwrites unsyncs it.
    permissions_synced: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class OverwriteRow(ShardBase):
    """A channel's allow/deny bits for one role or one member."""

    __tablename__ = "channel_overwrites"

    channel_id: Mapped[int] = mapped_column(
        ForeignKey("shard.channels.id", ondelete="CASCADE"), primary_key=True
    )
    target_kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # ROLE | MEMBER
    target_id: Mapped[int] = mapped_column(primary_key=True)
    allow: Mapped[int] = mapped_column()
    deny: Mapped[int] = mapped_column()
