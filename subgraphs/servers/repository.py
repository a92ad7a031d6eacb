"""SQL for the servers context, on the session it is given: a tenant's shard session, or the directory
session for invites."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.ids import new_id, shard_of
from subgraphs.kernel.tenancy import access, tenant_tables
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.servers.models import (
    BanRow,
    InviteRow,
    MemberRoleRow,
    MemberRow,
    MemberTimeoutRow,
    RoleRow,
    ServerRow,
)


async def servers_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, ServerRow]:
    rows = await session.scalars(select(ServerRow).where(ServerRow.id.in_(ids)))
    return {row.id: row for row in rows}


async def server_by_id(session: AsyncSession, server_id: int) -> ServerRow | None:
    return await session.get(ServerRow, server_id)


async def lock_server(session: AsyncSession, server_id: int) -> ServerRow | None:
    """The server row, locked until commit: serialises changes of ownership and membership per server
    (the same lock role edits and channel layout changes take)."""
    await access.lock_tenant(session, server_id)
    return await session.get(ServerRow, server_id, populate_existing=True)


async def is_member(session: AsyncSession, server_id: int, user_id: int) -> bool:
    found = await session.scalar(
        select(MemberRow.user_id).where(MemberRow.server_id == server_id, MemberRow.user_id == user_id)
    )
    return found is not None


def add_server(session: AsyncSession, server: ServerRow) -> None:
    session.add(server)


def add_member(session: AsyncSession, member: MemberRow) -> None:
    session.add(member)


def add_role(session: AsyncSession, role: RoleRow) -> None:
    session.add(role)


async def roles_of_servers(session: AsyncSession, server_ids: Sequence[int]) -> list[RoleRow]:
    rows = await session.scalars(
        select(RoleRow)
        .where(RoleRow.server_id.in_(server_ids))
        .order_by(RoleRow.server_id, RoleRow.position.desc(), RoleRow.id)
    )
    return list(rows)


async def role_by_id(session: AsyncSession, role_id: int, *, fresh: bool = False) -> RoleRow | None:
    """`fresh`: read the row again (None if it is gone), over the copy this session already holds."""
    if not fresh:
        return await session.get(RoleRow, role_id)
    return await session.scalar(
        select(RoleRow).where(RoleRow.id == role_id).execution_options(populate_existing=True)
    )


async def count_roles(session: AsyncSession, server_id: int) -> int:
    return int(await session.scalar(select(func.count()).where(RoleRow.server_id == server_id)) or 0)


async def highest_role_position(session: AsyncSession, server_id: int, user_id: int) -> int:
    """The member's highest role position (0: only @everyone)."""
    highest = await session.scalar(
        select(func.max(RoleRow.position))
        .join(MemberRoleRow, MemberRoleRow.role_id == RoleRow.id)
        .where(MemberRoleRow.server_id == server_id, MemberRoleRow.user_id == user_id)
    )
    return int(highest or 0)


async def shift_positions_from(session: AsyncSession, server_id: int, position: int) -> None:
    """Make room at `position` (positions stay unique and dense above @everyone)."""
    await session.execute(
        update(RoleRow)
        .where(RoleRow.server_id == server_id, RoleRow.position >= position, RoleRow.id != server_id)
        .values(position=RoleRow.position + 1)
    )


async def close_gap_at(session: AsyncSession, server_id: int, position: int) -> None:
    await session.execute(
        update(RoleRow)
        .where(RoleRow.server_id == server_id, RoleRow.position > position)
        .values(position=RoleRow.position - 1)
    )


async def member_has_role(session: AsyncSession, server_id: int, user_id: int, role_id: int) -> bool:
    found = await session.get(MemberRoleRow, (server_id, user_id, role_id))
    return found is not None


def add_member_role(session: AsyncSession, row: MemberRoleRow) -> None:
    session.add(row)


async def remove_member_role(session: AsyncSession, server_id: int, user_id: int, role_id: int) -> bool:
    result = await session.execute(
        delete(MemberRoleRow).where(
            MemberRoleRow.server_id == server_id,
            MemberRoleRow.user_id == user_id,
            MemberRoleRow.role_id == role_id,
        )
    )
    return bool(getattr(result, "rowcount", 0))


async def delete_role(session: AsyncSession, role: RoleRow) -> None:
    await session.delete(role)


async def role_permissions(session: AsyncSession, role_ids: Sequence[int]) -> Permission:
    """The union of these roles' permissions."""
    combined = Permission(0)
    if role_ids:
        for value in await session.scalars(select(RoleRow.permissions).where(RoleRow.id.in_(role_ids))):
            combined |= Permission(value)
    return combined


async def remove_member(session: AsyncSession, server_id: int, user_id: int) -> None:
    """Their member_roles rows go with them (foreign key ON DELETE CASCADE, shard migration s0002)."""
    await session.execute(
        delete(MemberRow).where(MemberRow.server_id == server_id, MemberRow.user_id == user_id)
    )


async def set_timeout(session: AsyncSession, server_id: int, user_id: int, until: datetime | None) -> None:
    """Start, change or (None) lift a member's timeout."""
    existing = await session.get(MemberTimeoutRow, (server_id, user_id))
    if until is None:
        if existing is not None:
            await session.delete(existing)
    elif existing is None:
        session.add(MemberTimeoutRow(server_id=server_id, user_id=user_id, until=until))
    else:
        existing.until = until


async def member_ids_of_servers(session: AsyncSession, server_ids: Sequence[int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {i: [] for i in server_ids}
    rows = await session.execute(
        select(MemberRow.server_id, MemberRow.user_id).where(MemberRow.server_id.in_(server_ids))
    )
    for server_id, user_id in rows:
        found[server_id].append(user_id)
    return found


async def member_counts(session: AsyncSession, server_ids: Sequence[int]) -> dict[int, int]:
    rows = await session.execute(
        select(MemberRow.server_id, func.count())
        .where(MemberRow.server_id.in_(server_ids))
        .group_by(MemberRow.server_id)
    )
    return {server_id: int(count) for server_id, count in rows.tuples()}


# --- discovery (one shard at a time) ------------------------------------------------------------------


@dataclass(frozen=True)
class Ranked:
    server: ServerRow
    rank: int  # 0: the name starts with the query; 1: the name or description contains it


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def discoverable_servers(
    session: AsyncSession, query: str, *, after: tuple[int, int] | None, limit: int
) -> list[Ranked]:
    """Public servers (never private ones, never DMs) whose name or description contains `query`
    (case-insensitive), exact-prefix name matches first, then by id; keyset-paged after (rank, id)."""
    needle = _like_escape(query)
    rank = case((ServerRow.name.ilike(f"{needle}%", escape="\\"), 0), else_=1)
    statement = select(ServerRow, rank.label("rank")).where(
        ServerRow.visibility == "PUBLIC",
        ServerRow.kind == "SERVER",
        ServerRow.moved_to.is_(None),  # not the other copy of a server being moved (db/tenant_move)
    )
    if needle:
        contains = f"%{needle}%"
        statement = statement.where(
            or_(
                ServerRow.name.ilike(contains, escape="\\"),
                ServerRow.description.ilike(contains, escape="\\"),
            )
        )
    if after is not None:
        after_rank, after_id = after
        statement = statement.where(or_(rank > after_rank, and_(rank == after_rank, ServerRow.id > after_id)))
    rows = await session.execute(statement.order_by(rank, ServerRow.id).limit(limit))
    return [Ranked(server, int(row_rank)) for server, row_rank in rows.tuples()]


# --- invites (directory session) ----------------------------------------------------------------------


def add_invite(session: AsyncSession, invite: InviteRow) -> None:
    session.add(invite)


async def invite_by_code(session: AsyncSession, code: str, *, fresh: bool = False) -> InviteRow | None:
    statement = select(InviteRow).where(InviteRow.code == code)
    if fresh:  # re-read what a concurrent transaction committed, over the copy already loaded
        statement = statement.execution_options(populate_existing=True)
    return await session.scalar(statement)


def _usable(now: datetime) -> list[ColumnElement[bool]]:
    return [
        InviteRow.revoked_at.is_(None),
        or_(InviteRow.expires_at.is_(None), InviteRow.expires_at > now),
        or_(InviteRow.max_uses == 0, InviteRow.uses < InviteRow.max_uses),
    ]


async def usable_invites(session: AsyncSession, server_id: int, now: datetime) -> list[InviteRow]:
    """Invites that can still be accepted, newest first."""
    rows = await session.scalars(
        select(InviteRow)
        .where(InviteRow.server_id == server_id, *_usable(now))
        .order_by(InviteRow.created_at.desc(), InviteRow.code)
    )
    return list(rows)


async def count_usable_invites(session: AsyncSession, server_id: int, now: datetime) -> int:
    found = await session.scalar(
        select(func.count()).select_from(InviteRow).where(InviteRow.server_id == server_id, *_usable(now))
    )
    return int(found or 0)


async def use_invite(session: AsyncSession, code: str, now: datetime) -> bool:
    """Spend one use, atomically: a single conditional UPDATE, so two accepts of the last use cannot both
    succeed (PostgreSQL re-checks the condition on the row once the first writer commits; SQLite runs
    one writer at a time). False when the invite was not usable any more."""
    result = await session.execute(
        update(InviteRow)
        .where(InviteRow.code == code, *_usable(now))
        .values(uses=InviteRow.uses + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


# --- moderation ---------------------------------------------------------------------------------------


async def ban_of(session: AsyncSession, server_id: int, user_id: int) -> BanRow | None:
    return await session.get(BanRow, (server_id, user_id), populate_existing=True)


async def is_banned(session: AsyncSession, server_id: int, user_id: int) -> bool:
    found = await session.scalar(
        select(BanRow.user_id).where(BanRow.server_id == server_id, BanRow.user_id == user_id)
    )
    return found is not None


def add_ban(session: AsyncSession, ban: BanRow) -> None:
    session.add(ban)


async def delete_ban(session: AsyncSession, ban: BanRow) -> None:
    await session.delete(ban)


async def bans_of_server(session: AsyncSession, server_id: int) -> list[BanRow]:
    rows = await session.scalars(
        select(BanRow).where(BanRow.server_id == server_id).order_by(BanRow.created_at.desc(), BanRow.user_id)
    )
    return list(rows)


async def add_channel(
    session: AsyncSession, server_id: int, name: str, kind: str, position: int, now: datetime
) -> None:
    """A top-level channel of a new server (its defaults). The channels context owns the table; it is
    written through the kernel's shared reference, as a conversation's channel is
    (friends/conversations.py)."""
    await session.execute(
        insert(tenant_tables.channels).values(
            id=new_id(shard_of(server_id)),  # a tenant's rows share its shard
            server_id=server_id,
            name=name,
            kind=kind,
            parent_id=None,
            position=position,
            permissions_synced=True,
            created_at=now,
        )
    )


async def members_among(session: AsyncSession, server_id: int, user_ids: Sequence[int]) -> set[int] | None:
    """Which of these users are members of the server; None when the server does not exist."""
    servers, members = tenant_tables.servers, tenant_tables.members
    if await session.scalar(select(servers.c.id).where(servers.c.id == server_id)) is None:
        return None
    found = await session.scalars(
        select(members.c.user_id).where(members.c.server_id == server_id, members.c.user_id.in_(user_ids))
    )
    return set(found)
