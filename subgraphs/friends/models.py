"""Tables owned by the friends context (directory database: relationships span tenants)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from db.base import DirectoryBase


class FriendshipRow(DirectoryBase):
    """One row per pair, stored with the smaller user id first so a pair cannot appear twice."""

    __tablename__ = "friendships"
    __table_args__ = (CheckConstraint("user_low_id < user_high_id", name="ordered_pair"),)

    user_low_id: Mapped[int] = mapped_column(primary_key=True)
    user_high_id: Mapped[int] = mapped_column(primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class FriendRequestRow(DirectoryBase):
    """A pending friend request. At most one per pair, whichever way it goes (the unique pair is what
    makes two simultaneous requests meet: the second finds the first and accepts it)."""

    __tablename__ = "friend_requests"
    __table_args__ = (
        CheckConstraint("user_low_id < user_high_id", name="ordered_pair"),
        UniqueConstraint("user_low_id", "user_high_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    sender_id: Mapped[int] = mapped_column(index=True)
    recipient_id: Mapped[int] = mapped_column(index=True)
    user_low_id: Mapped[int] = mapped_column()
    user_high_id: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class BlockRow(DirectoryBase):
    """`blocker_id` blocked `blocked_id`: no requests either way, no direct messages, and the blocked
    user's messages are flagged for the blocker."""

    __tablename__ = "user_blocks"

    blocker_id: Mapped[int] = mapped_column(primary_key=True)
    blocked_id: Mapped[int] = mapped_column(primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class DirectConversationRow(DirectoryBase):
    """The DM conversation of a pair of friends: a server of kind DM (its tenant row) and its one text
    channel. One per pair; erased with the friendship."""

    __tablename__ = "direct_conversations"
    __table_args__ = (CheckConstraint("user_low_id < user_high_id", name="ordered_pair"),)

    user_low_id: Mapped[int] = mapped_column(primary_key=True)
    user_high_id: Mapped[int] = mapped_column(primary_key=True, index=True)
    server_id: Mapped[int] = mapped_column(unique=True)  # FK to tenants: in the migration
    channel_id: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class GroupConversationRow(DirectoryBase):
    """A group conversation (2 to 10 participants): a server of kind GROUP_DM (its tenant row) and its one
    text channel. Its participants are the tenant's members (the shard's `members`, indexed in the
    directory's `memberships`); the owner is a group role, not a server owner (no permission bypass)."""

    __tablename__ = "group_conversations"

    server_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # FK to tenants: migration
    channel_id: Mapped[int] = mapped_column()
    name: Mapped[str | None] = mapped_column(String(100))  # None: shown as the participants' names
    owner_id: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
