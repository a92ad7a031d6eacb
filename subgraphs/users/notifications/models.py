"""Tables of notifications (directory database: a user's notifications span servers)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from db.base import DirectoryBase

GLOBAL_SCOPE = 0  # notification_preferences.scope_id of the user's global row (a snooze of everything)
# A folder's row is stored like a channel's (scope_id: the folder's id, server_id: its server) but marked
# FOLDER rather than CHANNEL: the followers query then sees, in the same (server_id, level) index range
# it already reads, whether any folder of the server is followed at ALL_MESSAGES, so a message nobody is
# addressed in still costs one query unless one is (only then is the channel's folder read from the shard).
# A channel's kind never changes, so the mark stays true; every other query keys on scope_id alone.
FOLDER_SCOPE = "FOLDER"


class NotificationRow(DirectoryBase):
    __tablename__ = "notifications"
    __table_args__ = (
        # One notification per recipient and source event: the consumer's retries insert nothing twice.
        UniqueConstraint("source_id", "user_id", name="uq_notifications_source_user"),
        # The list, newest first, and the unread part of it.
        Index("ix_notifications_user_id_read_id", "user_id", "read", "id"),
        Index("ix_notifications_user_id_id", "user_id", "id"),
        # A deleted server (an erased direct conversation too) or channel takes its notifications along.
        Index("ix_notifications_server_id_channel_id", "server_id", "channel_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    # FKs to users (ON DELETE CASCADE) are in the migration only: the worker process, which writes these
    # rows, does not load the users model.
    user_id: Mapped[int] = mapped_column()
    kind: Mapped[str] = mapped_column(String(32))  # rules.NotificationKind
    level: Mapped[str] = mapped_column(String(8))  # rules.NotificationLevel
    source_id: Mapped[int] = mapped_column()  # what caused it: the message (a friend request, later)
    server_id: Mapped[int | None] = mapped_column()  # references into a tenant shard: no FK
    channel_id: Mapped[int | None] = mapped_column()
    message_id: Mapped[int | None] = mapped_column()
    actor_id: Mapped[int | None] = mapped_column()  # who caused it (the message's author)
    created_at: Mapped[datetime] = mapped_column()
    read: Mapped[bool] = mapped_column(default=False)
    pushed: Mapped[bool] = mapped_column(default=True)  # False: held back by a snooze


class NotificationPreferenceRow(DirectoryBase):
    """A user's setting and snooze for one scope: everything (scope_id 0), a server, a folder or a
    channel."""

    __tablename__ = "notification_preferences"
    __table_args__ = (
        # The followers of a channel: who set ALL_MESSAGES on it, its folder or its server.
        Index("ix_notification_preferences_server_id_level", "server_id", "level"),
    )

    user_id: Mapped[int] = mapped_column(primary_key=True)  # FK to users: in the migration
    scope_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # 0, a server or channel id
    scope: Mapped[str] = mapped_column(String(8))  # GLOBAL, SERVER, FOLDER (FOLDER_SCOPE), CHANNEL
    server_id: Mapped[int | None] = mapped_column()  # the server of a SERVER, FOLDER or CHANNEL scope
    level: Mapped[str | None] = mapped_column(String(16))  # rules.NotificationSetting; None: inherit
    snoozed_until: Mapped[datetime | None] = mapped_column()
