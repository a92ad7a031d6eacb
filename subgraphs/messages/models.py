"""Tables owned by the messages context (tenant shard)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from db.base import ShardBase


class MessageRow(ShardBase):
    __tablename__ = "messages"
    __table_args__ = (
        # History pages walk one channel by id (ids are time-ordered).
        Index("ix_messages_channel_id_id", "channel_id", "id"),
        # A retried send with the same client nonce finds the first one instead of duplicating it.
        UniqueConstraint("channel_id", "author_id", "nonce", name="uq_messages_nonce"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    channel_id: Mapped[int] = mapped_column()  # FK to channels: in the migration (another context's table)
    server_id: Mapped[int] = mapped_column()
    author_id: Mapped[int] = mapped_column()
    content: Mapped[str] = mapped_column(Text)
    reply_to_id: Mapped[int | None] = mapped_column()
    nonce: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    edited_at: Mapped[datetime | None] = mapped_column()
