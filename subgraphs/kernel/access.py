"""Who may see and do what in a tenant: the one place permissions are computed, for every subgraph.

This is the single sanctioned read across context lines. Authorization needs membership (servers
context) and channel placement (channels context) in every subgraph, and computing it in one place is
what keeps the rules identical everywhere (Discord computes permissions the same way for every
resource). It reads through light-weight table references — never the owners' models — and only ever
within the tenant's own shard session.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import SHARD_SCHEMA
from subgraphs.kernel.permissions import ALL_PERMISSIONS, DEFAULT_MEMBER_PERMISSIONS, Permission

# Real Table objects (not sa.table()): only those get the per-shard schema translation. A metadata of
# their own: the owners' models stay the source of truth for DDL; these name just what authorization reads.
_authz = sa.MetaData(schema=SHARD_SCHEMA)
_servers = sa.Table(
    "servers",
    _authz,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("owner_id", sa.BigInteger),
    sa.Column("visibility", sa.String),
)
_members = sa.Table(
    "members", _authz, sa.Column("server_id", sa.BigInteger), sa.Column("user_id", sa.BigInteger)
)
_channels = sa.Table(
    "channels",
    _authz,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("server_id", sa.BigInteger),
    sa.Column("kind", sa.String),
)


@dataclass(frozen=True)
class ServerAccess:
    server_id: int
    owner_id: int
    visibility: str
    is_member: bool
    permissions: Permission

    @property
    def can_view(self) -> bool:
        return self.is_member or self.visibility == "PUBLIC"

    def has(self, permission: Permission) -> bool:
        return Permission.ADMINISTRATOR in self.permissions or (self.permissions & permission) == permission


@dataclass(frozen=True)
class ChannelAccess:
    channel_id: int
    kind: str
    server: ServerAccess

    @property
    def permissions(self) -> Permission:
        # Channel overwrites arrive with the communities issue; until then the server's permissions apply.
        return self.server.permissions

    def has(self, permission: Permission) -> bool:
        return self.server.has(permission)

    @property
    def can_view(self) -> bool:
        return self.server.is_member and self.has(Permission.VIEW_CHANNEL)


def _permissions(owner_id: int, user_id: int | None, is_member: bool) -> Permission:
    if user_id is not None and owner_id == user_id:
        return ALL_PERMISSIONS
    return DEFAULT_MEMBER_PERMISSIONS if is_member else Permission(0)


def _member_flag(user_id: int | None) -> sa.ColumnElement[bool]:
    if user_id is None:
        return sa.false()
    return sa.exists().where(_members.c.server_id == _servers.c.id, _members.c.user_id == user_id)


async def server_access(session: AsyncSession, server_id: int, user_id: int | None) -> ServerAccess | None:
    """None when the server does not exist (in this shard)."""
    row = (
        await session.execute(
            sa.select(
                _servers.c.owner_id, _servers.c.visibility, _member_flag(user_id).label("member")
            ).where(_servers.c.id == server_id)
        )
    ).one_or_none()
    if row is None:
        return None
    return ServerAccess(
        server_id,
        row.owner_id,
        row.visibility,
        bool(row.member),
        _permissions(row.owner_id, user_id, bool(row.member)),
    )


async def channel_access(session: AsyncSession, channel_id: int, user_id: int | None) -> ChannelAccess | None:
    """One query: the channel, its server and the caller's membership. None when the channel is missing."""
    row = (
        await session.execute(
            sa.select(
                _channels.c.kind,
                _servers.c.id,
                _servers.c.owner_id,
                _servers.c.visibility,
                _member_flag(user_id).label("member"),
            )
            .join(_servers, _servers.c.id == _channels.c.server_id)
            .where(_channels.c.id == channel_id)
        )
    ).one_or_none()
    if row is None:
        return None
    member = bool(row.member)
    server = ServerAccess(
        row.id, row.owner_id, row.visibility, member, _permissions(row.owner_id, user_id, member)
    )
    return ChannelAccess(channel_id, row.kind, server)


async def visible_channel_ids(session: AsyncSession, channel_ids: list[int], user_id: int | None) -> set[int]:
    """Of these channels (one shard), the ones the user may view — for batched entity references."""
    if user_id is None or not channel_ids:
        return set()
    rows = await session.execute(
        sa.select(_channels.c.id)
        .join(_members, _members.c.server_id == _channels.c.server_id)
        .where(_channels.c.id.in_(channel_ids), _members.c.user_id == user_id)
    )
    return set(rows.scalars())


async def member_server_ids(session: AsyncSession, server_ids: list[int], user_id: int | None) -> set[int]:
    if user_id is None or not server_ids:
        return set()
    rows = await session.execute(
        sa.select(_members.c.server_id).where(
            _members.c.server_id.in_(server_ids), _members.c.user_id == user_id
        )
    )
    return set(rows.scalars())
