"""Tables owned by the servers context (tenant shard)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Index, String, Text, func
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
