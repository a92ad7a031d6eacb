"""Tables owned by the webhooks context: webhooks (tenant shard) and bot accounts (directory)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, func
from sqlalchemy.orm import Mapped, mapped_column

from db.base import DirectoryBase, ShardBase


class WebhookRow(ShardBase):
    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    server_id: Mapped[int] = mapped_column(index=True)
    channel_id: Mapped[int] = mapped_column(index=True)  # FK to channels: in the migration only
    name: Mapped[str] = mapped_column(String(80))
    token_hash: Mapped[str] = mapped_column(String(64))  # only a hash of the secret is stored
    creator_id: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    avatar_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    # A deleted webhook stays as a tombstone, so its token's holder is told 404 (gone), not 401.
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class BotRow(DirectoryBase):
    """A bot account: a user (flagged `bot`) created in one server. FKs (users, tenants): migration d0050."""

    __tablename__ = "bots"

    user_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    server_id: Mapped[int] = mapped_column(index=True)
    creator_id: Mapped[int] = mapped_column()
    token_hash: Mapped[str | None] = mapped_column(String(64))  # SHA-256 of the secret; None: revoked
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
