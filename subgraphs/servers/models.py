"""Tables owned by the servers context: tenant rows in the shard, invite codes in the directory."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import DirectoryBase, ShardBase
from db.tenants import Tenant


class ServerRow(ShardBase):
    __tablename__ = "servers"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    visibility: Mapped[str] = mapped_column(String(16))  # PUBLIC | PRIVATE
    kind: Mapped[str] = mapped_column(String(16), default="SERVER")  # SERVER | DM | GROUP_DM
    owner_id: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Set on the old copy once a tenant has moved to another shard (db/tenant_move.py): a fence.
    moved_to: Mapped[int | None] = mapped_column(default=None)
    # media/ storage keys of the server's picture and banner; None when unset.
    picture_key: Mapped[str | None] = mapped_column(String(256), default=None)
    banner_key: Mapped[str | None] = mapped_column(String(256), default=None)


class MemberTimeoutRow(ShardBase):
    """A running (or lapsed) timeout; kept apart from the member row so leaving does not lift it."""

    __tablename__ = "member_timeouts"

    server_id: Mapped[int] = mapped_column(
        ForeignKey("shard.servers.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(primary_key=True)
    until: Mapped[datetime]


class MemberRow(ShardBase):
    __tablename__ = "members"

    server_id: Mapped[int] = mapped_column(
        ForeignKey("shard.servers.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(primary_key=True, index=True)
    joined_at: Mapped[datetime] = mapped_column(server_default=func.now())


class BanRow(ShardBase):
    """A user banned from a server: they cannot join it again until unbanned."""

    __tablename__ = "bans"

    server_id: Mapped[int] = mapped_column(
        ForeignKey("shard.servers.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(primary_key=True)
    reason: Mapped[str | None] = mapped_column(String(512))
    banned_by: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class RoleRow(ShardBase):
    """A server's role. The @everyone role has the server's id and position 0; every member has it."""

    __tablename__ = "roles"
    __table_args__ = (Index("ix_roles_server_position", "server_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    server_id: Mapped[int] = mapped_column(ForeignKey("shard.servers.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    permissions: Mapped[int] = mapped_column()  # a Permission bitset
    position: Mapped[int] = mapped_column()  # higher ranks above lower; @everyone is 0
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class MemberRoleRow(ShardBase):
    __tablename__ = "member_roles"
    __table_args__ = (
        ForeignKeyConstraint(
            ["server_id", "user_id"], ["shard.members.server_id", "shard.members.user_id"], ondelete="CASCADE"
        ),
    )

    server_id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(primary_key=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("shard.roles.id", ondelete="CASCADE"), primary_key=True)


class InviteRow(DirectoryBase):
    """An invite link. Global (directory), so a code alone finds its server, whatever shard holds it."""

    __tablename__ = "invites"
    __table_args__ = (
        CheckConstraint("max_uses >= 0 AND max_uses <= 100", name="max_uses_range"),
        CheckConstraint("uses >= 0", name="uses_not_negative"),
    )

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey(Tenant.id, ondelete="CASCADE"), index=True)
    channel_id: Mapped[int | None] = mapped_column()  # the channel a client lands in (not settable yet)
    creator_id: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column()  # None: never
    max_uses: Mapped[int] = mapped_column()  # 0: unlimited
    uses: Mapped[int] = mapped_column(default=0)
    revoked_at: Mapped[datetime | None] = mapped_column()


class InvitationRow(DirectoryBase):
    """An in-app invitation of one user to a server (global, so the invitee lists theirs in one query)."""

    __tablename__ = "server_invitations"
    __table_args__ = (UniqueConstraint("server_id", "invitee_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    server_id: Mapped[int] = mapped_column(ForeignKey(Tenant.id, ondelete="CASCADE"))
    inviter_id: Mapped[int] = mapped_column()
    invitee_id: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
