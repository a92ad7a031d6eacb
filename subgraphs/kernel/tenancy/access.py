"""Who may see and do what in a tenant: the one place permissions are computed, for every subgraph.

This is the single sanctioned read across context lines. Authorization needs membership (servers
context) and channel placement (channels context) in every subgraph, and computing it in one place is
what keeps the rules identical everywhere (Discord computes permissions the same way for every
resource). It reads through light-weight table references — never the owners' models — and only ever
within the tenant's own shard session.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import UtcDateTime
from subgraphs.kernel.errors import TenantMoved
from subgraphs.kernel.tenancy import tenant_tables
from subgraphs.kernel.tenancy.permissions import (
    MemberGrant,
    Overwrite,
    Permission,
    base_permissions,
    channel_permissions,
)

# The shared light references (kernel/tenancy/tenant_tables.py), named as this module always has.
_servers = tenant_tables.servers
_members = tenant_tables.members
_timeouts = tenant_tables.member_timeouts
_roles = tenant_tables.roles
_member_roles = tenant_tables.member_roles
_channels = tenant_tables.channels
_overwrites = tenant_tables.channel_overwrites


# Tenants that are conversations of the friends context, not communities.
CONVERSATION_KINDS = frozenset({"DM", "GROUP_DM"})


@dataclass(frozen=True)
class ServerAccess:
    server_id: int
    user_id: int | None
    owner_id: int
    visibility: str
    is_member: bool
    role_ids: frozenset[int]  # the member's roles, @everyone (id = server id) included for members
    permissions: Permission
    timed_out_until: datetime | None = None  # set only while a timeout is running (and applied)

    @property
    def can_view(self) -> bool:
        return self.is_member or self.visibility == "PUBLIC"

    @property
    def timed_out(self) -> bool:
        return self.timed_out_until is not None

    @property
    def is_owner(self) -> bool:
        return self.is_member and self.owner_id == self.user_id

    def has(self, permission: Permission) -> bool:
        return (self.permissions & permission) == permission


@dataclass(frozen=True)
class ChannelAccess:
    channel_id: int
    kind: str
    parent_id: int | None
    server: ServerAccess
    permissions: Permission

    def has(self, permission: Permission) -> bool:
        return (self.permissions & permission) == permission

    @property
    def can_view(self) -> bool:
        return self.server.is_member and self.has(Permission.VIEW_CHANNEL)

    @property
    def can_read(self) -> bool:
        """Whether its holder may read the channel's messages (View Channel and Read Message History)."""
        return self.can_view and self.has(Permission.READ_MESSAGE_HISTORY)


def _member_flag(user_id: int | None) -> sa.ColumnElement[bool]:
    if user_id is None:
        return sa.false()
    return sa.exists().where(_members.c.server_id == _servers.c.id, _members.c.user_id == user_id)


def _timeout_of(user_id: int | None) -> sa.ColumnElement[datetime]:
    if user_id is None:
        return sa.cast(sa.null(), UtcDateTime)
    return (
        sa.select(_timeouts.c.until)
        .where(_timeouts.c.server_id == _servers.c.id, _timeouts.c.user_id == user_id)
        .scalar_subquery()
    )


def running_timeout(until: datetime | None, now: datetime) -> datetime | None:
    """`until` if that timeout is still running at `now` (UTC); SQLite hands back naive UTC values."""
    if until is None:
        return None
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    return until if until > now else None


# session.info flag set by the unit of work on the shard sessions of a mutation's transaction.
WRITING = "beep.writing"


def fenced(query: sa.Select[Any], session: AsyncSession) -> sa.Select[Any]:
    """In a write transaction, the servers rows read FOR KEY SHARE (held until commit): a tenant move's
    switch (FOR UPDATE) waits for this transaction, or this one waits for the switch and then sees
    `moved_to` (db/tenant_move/mover.py). Reads take no lock. SQLite ignores it (moves are offline there)."""
    if not session.info.get(WRITING):
        return query
    return fence(query)


def fence(query: sa.Select[Any]) -> sa.Select[Any]:
    """`query` with the fence of a write transaction (see `fenced`), for statements built once."""
    return query.with_for_update(read=True, key_share=True, of=_servers)


def check_not_moved(server_id: int, moved_to: int | None) -> None:
    """A write must not land on the old copy of a moved tenant: raise so the mutation is retried."""
    if moved_to is not None:
        raise TenantMoved(server_id, moved_to)


async def hold_tenant(session: AsyncSession, server_id: int) -> None:
    """For a write that checks no access (the worker's consumers): hold the tenant against a move's switch
    as access checks do (`fenced`), and raise `TenantMoved` if this copy is no longer the live one. A
    tenant that is gone (deleted) is left to the caller's own lookups."""
    moved_to = await session.scalar(
        fenced(sa.select(_servers.c.moved_to).where(_servers.c.id == server_id), session)
    )
    check_not_moved(server_id, moved_to)


async def server_accesses(
    session: AsyncSession, server_ids: list[int], user_id: int | None
) -> dict[int, ServerAccess]:
    """Two queries for any number of servers (of one shard): the servers with membership, then the
    @everyone role and the member's roles."""
    if not server_ids:
        return {}
    rows = (
        await session.execute(
            fenced(
                sa.select(
                    _servers.c.id,
                    _servers.c.owner_id,
                    _servers.c.visibility,
                    _servers.c.kind,
                    _servers.c.moved_to,
                    _member_flag(user_id).label("member"),
                    _timeout_of(user_id).label("timeout_until"),
                ).where(_servers.c.id.in_(server_ids)),
                session,
            )
        )
    ).all()
    if session.info.get(WRITING):
        for row in rows:
            check_not_moved(row.id, row.moved_to)
    members = [row.id for row in rows if row.member]
    everyone: dict[int, Permission] = {}
    role_perms: dict[int, list[Permission]] = defaultdict(list)
    role_ids: dict[int, set[int]] = defaultdict(set)
    if members:
        own_roles = sa.select(_member_roles.c.role_id).where(
            _member_roles.c.server_id.in_(members), _member_roles.c.user_id == user_id
        )
        for role in await session.execute(
            sa.select(_roles.c.id, _roles.c.server_id, _roles.c.permissions).where(
                _roles.c.server_id.in_(members),
                (_roles.c.id == _roles.c.server_id) | _roles.c.id.in_(own_roles),
            )
        ):
            role_ids[role.server_id].add(role.id)
            if role.id == role.server_id:
                everyone[role.server_id] = Permission(role.permissions)
            else:
                role_perms[role.server_id].append(Permission(role.permissions))
    found = {}
    now = datetime.now(UTC)
    for row in rows:
        # A conversation (kind DM or GROUP_DM) has no server owner: its members hold the same
        # permissions, so the friend who opened it (or a group's owner) cannot add channels or roles.
        owner_id = row.owner_id if row.kind not in CONVERSATION_KINDS else 0
        is_owner = bool(row.member) and owner_id == user_id
        grant = MemberGrant(
            is_owner=is_owner,
            is_member=bool(row.member),
            everyone=everyone.get(row.id, Permission(0)),
            roles=tuple(role_perms.get(row.id, ())),
            timed_out=running_timeout(row.timeout_until, now) is not None,
        )
        permissions = base_permissions(grant)
        # A timeout does not bind the owner or an administrator: report it only where it applies.
        timed_out_until = (
            None
            if is_owner or Permission.ADMINISTRATOR in permissions
            else running_timeout(row.timeout_until, now)
        )
        found[row.id] = ServerAccess(
            row.id,
            user_id,
            owner_id,
            row.visibility,
            bool(row.member),
            frozenset(role_ids.get(row.id, ())),
            permissions,
            timed_out_until,
        )
    return found


async def server_access(session: AsyncSession, server_id: int, user_id: int | None) -> ServerAccess | None:
    """None when the server does not exist (in this shard)."""
    return (await server_accesses(session, [server_id], user_id)).get(server_id)


async def member_holding(
    session: AsyncSession, server_id: int, user_id: int | None, permission: Permission
) -> ServerAccess | None:
    """The caller's access if they are a member holding `permission` there; None otherwise (signed out,
    not a member, no such server: the same answer, so existence does not leak)."""
    if user_id is None:
        return None
    found = await server_access(session, server_id, user_id)
    if found is None or not found.is_member or not found.has(permission):
        return None
    return found


def overwrites_source(channel_id: int, parent_id: int | None, permissions_synced: bool) -> int:
    """Whose overwrites apply to a channel: its folder's while it is synced with it, else its own."""
    return parent_id if parent_id is not None and permissions_synced else channel_id


async def channel_accesses(
    session: AsyncSession, channel_ids: list[int], user_id: int | None
) -> dict[int, ChannelAccess]:
    """Four queries for any number of channels (of one shard): channels, servers, roles, overwrites. A
    channel in a folder with `permissions_synced` uses its folder's overwrites."""
    if not channel_ids:
        return {}
    channels = (
        await session.execute(
            sa.select(
                _channels.c.id,
                _channels.c.server_id,
                _channels.c.kind,
                _channels.c.parent_id,
                _channels.c.permissions_synced,
            ).where(_channels.c.id.in_(channel_ids))
        )
    ).all()
    servers = await server_accesses(session, sorted({c.server_id for c in channels}), user_id)
    source = {c.id: overwrites_source(c.id, c.parent_id, c.permissions_synced) for c in channels}
    overwrites: dict[int, list[Overwrite]] = defaultdict(list)
    if any(servers[c.server_id].is_member for c in channels if c.server_id in servers):
        for ow in await session.execute(
            sa.select(_overwrites).where(_overwrites.c.channel_id.in_(set(source.values())))
        ):
            overwrites[ow.channel_id].append(
                Overwrite(ow.target_kind, ow.target_id, Permission(ow.allow), Permission(ow.deny))
            )
    found = {}
    for channel in channels:
        server = servers.get(channel.server_id)
        if server is None:
            continue
        permissions = (
            channel_permissions(
                server.permissions,
                everyone_role_id=server.server_id,
                user_id=user_id or 0,
                member_role_ids=server.role_ids,
                overwrites=tuple(overwrites.get(source[channel.id], ())),
                timed_out=server.timed_out,
            )
            if server.is_member
            else Permission(0)
        )
        found[channel.id] = ChannelAccess(channel.id, channel.kind, channel.parent_id, server, permissions)
    return found


async def channel_access(session: AsyncSession, channel_id: int, user_id: int | None) -> ChannelAccess | None:
    """None when the channel is missing (in this shard)."""
    return (await channel_accesses(session, [channel_id], user_id)).get(channel_id)


async def everyone_channel_permissions(session: AsyncSession, channel_id: int) -> Permission | None:
    """What @everyone holds in a channel: the role's permissions, then the channel's (or its synced
    folder's) @everyone overwrite. Unlike a member's, they are not emptied without View Channel: this is
    what a channel's webhooks post with (Discord's rule for their link embeds). None: no such channel."""
    channel = (
        await session.execute(
            sa.select(_channels.c.server_id, _channels.c.parent_id, _channels.c.permissions_synced).where(
                _channels.c.id == channel_id
            )
        )
    ).first()
    if channel is None:
        return None
    role = await session.scalar(
        sa.select(_roles.c.permissions).where(
            _roles.c.id == channel.server_id
        )  # @everyone's id: the server's
    )
    base = base_permissions(
        MemberGrant(is_owner=False, is_member=True, everyone=Permission(role or 0), roles=())
    )
    if Permission.ADMINISTRATOR in base:
        return base
    source = overwrites_source(channel_id, channel.parent_id, channel.permissions_synced)
    for overwrite in await session.execute(
        sa.select(_overwrites.c.allow, _overwrites.c.deny).where(
            _overwrites.c.channel_id == source,
            _overwrites.c.target_kind == "ROLE",
            _overwrites.c.target_id == channel.server_id,
        )
    ):
        base = (base & ~Permission(overwrite.deny)) | Permission(overwrite.allow)
    return base


async def visible_channel_ids(session: AsyncSession, channel_ids: list[int], user_id: int | None) -> set[int]:
    """Of these channels (one shard), the ones the user may view — for batched entity references."""
    if user_id is None:
        return set()
    return {
        cid
        for cid, found in (await channel_accesses(session, channel_ids, user_id)).items()
        if found.can_view
    }


async def visible_channels_of_server(session: AsyncSession, server_id: int, user_id: int | None) -> set[int]:
    """Every channel of a server the user may view (for streams that must not reveal the others)."""
    channel_ids = list(
        await session.scalars(sa.select(_channels.c.id).where(_channels.c.server_id == server_id))
    )
    return await visible_channel_ids(session, channel_ids, user_id)


async def channel_viewers(
    session: AsyncSession,
    channel_id: int,
    user_ids: Sequence[int],
    needed: Permission = Permission.VIEW_CHANNEL,
) -> set[int]:
    """Of these users, the members who hold `needed` in the channel (View Channel by default) — five
    queries for any number of them (member lists, live streams shared by the router's fan-out tier). A
    running timeout never takes View Channel or Read Message History away."""
    channel = (
        await session.execute(
            sa.select(_channels.c.server_id, _channels.c.parent_id, _channels.c.permissions_synced).where(
                _channels.c.id == channel_id
            )
        )
    ).first()
    if channel is None or not user_ids:
        return set()
    server_id = channel.server_id
    owner_id = await session.scalar(sa.select(_servers.c.owner_id).where(_servers.c.id == server_id))
    members = set(
        await session.scalars(
            sa.select(_members.c.user_id).where(
                _members.c.server_id == server_id, _members.c.user_id.in_(user_ids)
            )
        )
    )
    if not members:
        return set()
    roles = {
        row.id: Permission(row.permissions)
        for row in await session.execute(
            sa.select(_roles.c.id, _roles.c.permissions).where(_roles.c.server_id == server_id)
        )
    }
    held: dict[int, set[int]] = defaultdict(set)
    for row in await session.execute(
        sa.select(_member_roles.c.user_id, _member_roles.c.role_id).where(
            _member_roles.c.server_id == server_id, _member_roles.c.user_id.in_(members)
        )
    ):
        held[row.user_id].add(row.role_id)
    source = overwrites_source(channel_id, channel.parent_id, channel.permissions_synced)
    overwrites = tuple(
        Overwrite(ow.target_kind, ow.target_id, Permission(ow.allow), Permission(ow.deny))
        for ow in await session.execute(sa.select(_overwrites).where(_overwrites.c.channel_id == source))
    )
    everyone = roles.get(server_id, Permission(0))
    viewers = set()
    for user_id in members:
        own = held.get(user_id, set())
        grant = MemberGrant(
            is_owner=user_id == owner_id,
            is_member=True,
            everyone=everyone,
            roles=tuple(roles[r] for r in own if r in roles),
        )
        permissions = channel_permissions(
            base_permissions(grant),
            everyone_role_id=server_id,
            user_id=user_id,
            member_role_ids=frozenset(own | {server_id}),
            overwrites=overwrites,
        )
        if needed in permissions:
            viewers.add(user_id)
    return viewers


async def member_ids_page(session: AsyncSession, server_id: int, after_user_id: int, limit: int) -> list[int]:
    """A server's member ids in ascending order, after `after_user_id`."""
    rows = await session.scalars(
        sa.select(_members.c.user_id)
        .where(_members.c.server_id == server_id, _members.c.user_id > after_user_id)
        .order_by(_members.c.user_id)
        .limit(limit)
    )
    return list(rows)


async def member_server_ids(session: AsyncSession, server_ids: list[int], user_id: int | None) -> set[int]:
    if user_id is None or not server_ids:
        return set()
    rows = await session.execute(
        sa.select(_members.c.server_id).where(
            _members.c.server_id.in_(server_ids), _members.c.user_id == user_id
        )
    )
    return set(rows.scalars())


async def role_server_id(session: AsyncSession, role_id: int) -> int | None:
    """The server a role belongs to (for overwrites naming a role); None when there is no such role."""
    return await session.scalar(sa.select(_roles.c.server_id).where(_roles.c.id == role_id))


async def lock_tenant(session: AsyncSession, server_id: int) -> None:
    """Serialise a tenant's structural changes (roles, channel layout, ownership, membership) until commit.

    A no-op UPDATE of the server row: on PostgreSQL it takes that row's lock (like SELECT … FOR UPDATE);
    on SQLite, which ignores FOR UPDATE, it takes the database's write lock. One statement, both backends.
    Take it before reading the rows the change is computed from. Refuses the old copy of a moved tenant.
    """
    moved_to = await session.scalar(
        sa.update(_servers)
        .where(_servers.c.id == server_id)
        .values(id=_servers.c.id)
        .returning(_servers.c.moved_to),
        execution_options={"synchronize_session": False},
    )
    check_not_moved(server_id, moved_to)
