"""SQL for the servers context, on the shard session it is given."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.servers.models import MemberRoleRow, MemberRow, RoleRow, ServerRow


async def servers_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, ServerRow]:
    rows = await session.scalars(select(ServerRow).where(ServerRow.id.in_(ids)))
    return {row.id: row for row in rows}


async def server_by_id(session: AsyncSession, server_id: int) -> ServerRow | None:
    return await session.get(ServerRow, server_id)


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


async def role_by_id(session: AsyncSession, role_id: int) -> RoleRow | None:
    return await session.get(RoleRow, role_id)


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
