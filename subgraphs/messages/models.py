"""Tables owned by the messages context (tenant shard)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, func
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
    mention_everyone: Mapped[bool] = mapped_column(default=False)  # @everyone/@here by someone allowed to
    pinned_at: Mapped[datetime | None] = mapped_column()  # None: not pinned
    pinned_by: Mapped[int | None] = mapped_column()
    suppress_embeds: Mapped[bool] = mapped_column(default=False)  # no link previews (author's choice)
    # Posted by a webhook (author_id is then the webhook's id): the name and avatar shown, and its
    # Discord-style embeds as JSON (subgraphs/messages/embeds.py). Shard migration s0050.
    webhook_id: Mapped[int | None] = mapped_column(default=None)
    author_name: Mapped[str | None] = mapped_column(String(80), default=None)
    author_avatar_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    embeds: Mapped[str | None] = mapped_column(Text, default=None)


class ReactionRow(ShardBase):
    """One member's reaction with one emoji to one message."""

    __tablename__ = "message_reactions"

    message_id: Mapped[int] = mapped_column(
        ForeignKey("shard.messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(primary_key=True)
    emoji: Mapped[str] = mapped_column(String(64), primary_key=True)
    server_id: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class MessageEditRow(ShardBase):
    """A message's earlier text, kept at each edit (moderators read the history)."""

    __tablename__ = "message_edits"
    __table_args__ = (Index("ix_message_edits_message_id", "message_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    message_id: Mapped[int] = mapped_column(ForeignKey("shard.messages.id", ondelete="CASCADE"))
    server_id: Mapped[int] = mapped_column()
    content: Mapped[str] = mapped_column(Text)  # the text before this edit
    edited_at: Mapped[datetime] = mapped_column()


class ReadStateRow(ShardBase):
    """The last message a member has read in a channel."""

    __tablename__ = "read_states"
    __table_args__ = (Index("ix_read_states_server_id_user_id", "server_id", "user_id"),)

    # FK to channels (ON DELETE CASCADE): in the migration, as for messages (another context's table).
    channel_id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(primary_key=True)
    server_id: Mapped[int] = mapped_column()
    last_read_id: Mapped[int] = mapped_column()


class AttachmentRow(ShardBase):
    """A file of a message (subgraphs/messages/attachments.py); media/ holds its bytes under `storage_key`.

    `message_id` is None while an upload waits to be attached (upload first, send later): such rows
    belong to their uploader and expire after an hour (kernel/tenancy/attachment_files.py)."""

    __tablename__ = "attachments"
    __table_args__ = (
        Index("ix_attachments_message_id_position", "message_id", "position"),
        Index("ix_attachments_server_id_storage_key", "server_id", "storage_key"),
        Index("ix_attachments_server_id_thumbnail_key", "server_id", "thumbnail_key"),
        Index("ix_attachments_channel_id_uploader_id", "channel_id", "uploader_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("shard.messages.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column()  # FK to channels (cascade): in the migration
    server_id: Mapped[int] = mapped_column()
    uploader_id: Mapped[int] = mapped_column()
    position: Mapped[int] = mapped_column(default=0)
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column()
    content_type: Mapped[str] = mapped_column(String(127))  # detected from the bytes
    width: Mapped[int | None] = mapped_column()
    height: Mapped[int | None] = mapped_column()
    storage_key: Mapped[str] = mapped_column(String(256))
    thumbnail_key: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column()
