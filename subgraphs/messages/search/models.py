"""Search documents of the SQL backend, in the tenant's shard next to the messages they index.

The words themselves are indexed per dialect (the s0080 migration): on SQLite an FTS5 table
`search_fts` (rowid = message id) kept equal to the documents by triggers; on PostgreSQL a GIN index over
`to_tsvector('simple', terms)`. A document cascades from its message, so a message, channel or server
deleted by any path takes its documents with it even before the indexer hears of it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import ShardBase


class SearchDocumentRow(ShardBase):
    __tablename__ = "search_documents"
    __table_args__ = (
        Index("ix_search_documents_channel_id_message_id", "channel_id", "message_id"),
        Index("ix_search_documents_server_id", "server_id"),
    )

    message_id: Mapped[int] = mapped_column(
        ForeignKey("shard.messages.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    channel_id: Mapped[int] = mapped_column()
    server_id: Mapped[int] = mapped_column()
    author_id: Mapped[int] = mapped_column()
    content: Mapped[str] = mapped_column(Text)  # as stored (mention tokens included), for highlighting
    terms: Mapped[str] = mapped_column(Text)  # the folded words (documents.terms_of), what is matched
    created_at: Mapped[datetime] = mapped_column()
    has_link: Mapped[bool] = mapped_column()
    has_file: Mapped[bool] = mapped_column()
    has_image: Mapped[bool] = mapped_column()


class SearchMentionRow(ShardBase):
    """A user a document mentions (the `mentions` filter)."""

    __tablename__ = "search_mentions"
    __table_args__ = (Index("ix_search_mentions_user_id", "user_id", "message_id"),)

    message_id: Mapped[int] = mapped_column(
        ForeignKey("shard.search_documents.message_id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(primary_key=True)
    server_id: Mapped[int] = mapped_column()
