"""SQL for the servers context, on the shard session it is given."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.servers.models import MemberRow, RoleRow, ServerRow


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
