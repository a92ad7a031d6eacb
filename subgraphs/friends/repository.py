"""SQL for the friends context, on the directory session it is given."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy import select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from db.tenants import Membership
from subgraphs.friends.models import (
    BlockRow,
    DirectConversationRow,
    FriendRequestRow,
    FriendshipRow,
    GroupConversationRow,
)
from subgraphs.kernel.tenancy import directory_tables

# The users context's table (kernel/tenancy/directory_tables.py): usernames are how requests find people.
_users = directory_tables.users


def ordered(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


async def lock_pair(session: AsyncSession, a: int, b: int) -> None:
    """Serialise every change of one pair's relationship until commit (requests both ways at once,
    accepting while the other cancels, two first opens of their conversation).

    PostgreSQL: a transaction-scoped advisory lock on the pair (one lock, so no deadlock between pairs
    taken in different orders). SQLite: a no-op write takes the database's write lock (SQLite has one
    writer), so make it before reading what the change depends on.
    """
    low, high = ordered(a, b)
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.blake2b(f"friends:{low}:{high}".encode(), digest_size=8).digest()
        key = int.from_bytes(digest, "big", signed=True)
        await session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    else:
        await session.execute(
            sa.update(_users).where(_users.c.id == low).values(id=_users.c.id),
            execution_options={"synchronize_session": False},
        )


async def user_by_username(session: AsyncSession, username: str) -> tuple[int, bool] | None:
    """(id, is a bot) of the user with that username (case-insensitive)."""
    row = (
        await session.execute(
            select(_users.c.id, _users.c.bot).where(_users.c.username_key == username.strip().casefold())
        )
    ).first()
    return (int(row.id), bool(row.bot)) if row is not None else None


async def user_exists(session: AsyncSession, user_id: int) -> bool:
    return await session.scalar(select(_users.c.id).where(_users.c.id == user_id)) is not None


async def friend_ids(session: AsyncSession, user_id: int) -> list[int]:
    query = union_all(
        select(FriendshipRow.user_high_id.label("friend_id"), FriendshipRow.created_at).where(
            FriendshipRow.user_low_id == user_id
        ),
        select(FriendshipRow.user_low_id.label("friend_id"), FriendshipRow.created_at).where(
            FriendshipRow.user_high_id == user_id
        ),
    ).subquery()
    rows = await session.execute(select(query.c.friend_id).order_by(query.c.created_at.desc()))
    return [row.friend_id for row in rows]


async def friend_count(session: AsyncSession, user_id: int) -> int:
    count = await session.scalar(
        select(sa.func.count()).where(
            (FriendshipRow.user_low_id == user_id) | (FriendshipRow.user_high_id == user_id)
        )
    )
    return int(count or 0)


async def friendship(session: AsyncSession, a: int, b: int) -> FriendshipRow | None:
    low, high = ordered(a, b)
    return await session.scalar(
        select(FriendshipRow)
        .where(FriendshipRow.user_low_id == low, FriendshipRow.user_high_id == high)
        .execution_options(populate_existing=True)
    )


async def request_between(session: AsyncSession, a: int, b: int) -> FriendRequestRow | None:
    low, high = ordered(a, b)
    return await session.scalar(
        select(FriendRequestRow)
        .where(FriendRequestRow.user_low_id == low, FriendRequestRow.user_high_id == high)
        .execution_options(populate_existing=True)
    )


async def request_by_id(session: AsyncSession, request_id: int) -> FriendRequestRow | None:
    return await session.scalar(
        select(FriendRequestRow)
        .where(FriendRequestRow.id == request_id)
        .execution_options(populate_existing=True)
    )


async def incoming_requests(session: AsyncSession, user_id: int) -> list[FriendRequestRow]:
    rows = await session.scalars(
        select(FriendRequestRow)
        .where(FriendRequestRow.recipient_id == user_id)
        .order_by(FriendRequestRow.id.desc())
    )
    return list(rows)


async def outgoing_requests(session: AsyncSession, user_id: int) -> list[FriendRequestRow]:
    rows = await session.scalars(
        select(FriendRequestRow)
        .where(FriendRequestRow.sender_id == user_id)
        .order_by(FriendRequestRow.id.desc())
    )
    return list(rows)


async def outgoing_count(session: AsyncSession, user_id: int) -> int:
    count = await session.scalar(select(sa.func.count()).where(FriendRequestRow.sender_id == user_id))
    return int(count or 0)


async def block_between(session: AsyncSession, blocker_id: int, blocked_id: int) -> BlockRow | None:
    return await session.scalar(
        select(BlockRow)
        .where(BlockRow.blocker_id == blocker_id, BlockRow.blocked_id == blocked_id)
        .execution_options(populate_existing=True)
    )


async def blocked_ids(session: AsyncSession, blocker_id: int) -> list[int]:
    rows = await session.scalars(
        select(BlockRow.blocked_id)
        .where(BlockRow.blocker_id == blocker_id)
        .order_by(BlockRow.created_at.desc())
    )
    return list(rows)


async def conversation(session: AsyncSession, a: int, b: int) -> DirectConversationRow | None:
    low, high = ordered(a, b)
    return await session.scalar(
        select(DirectConversationRow)
        .where(DirectConversationRow.user_low_id == low, DirectConversationRow.user_high_id == high)
        .execution_options(populate_existing=True)
    )


async def conversations_of(session: AsyncSession, user_id: int) -> list[DirectConversationRow]:
    rows = await session.scalars(
        select(DirectConversationRow).where(
            (DirectConversationRow.user_low_id == user_id) | (DirectConversationRow.user_high_id == user_id)
        )
    )
    return list(rows)


async def group(session: AsyncSession, server_id: int) -> GroupConversationRow | None:
    return await session.scalar(
        select(GroupConversationRow)
        .where(GroupConversationRow.server_id == server_id)
        .execution_options(populate_existing=True)
    )


async def participant_ids(session: AsyncSession, server_id: int) -> list[int]:
    """A group's participants, the longest-standing first (the tenant's membership index)."""
    return (await participants_of(session, [server_id])).get(server_id, [])


async def participants_of(session: AsyncSession, server_ids: list[int]) -> dict[int, list[int]]:
    """Several groups' participants in one query, each the longest-standing first."""
    if not server_ids:
        return {}
    found: dict[int, list[int]] = {server_id: [] for server_id in server_ids}
    rows = await session.execute(
        select(Membership.server_id, Membership.user_id)
        .where(Membership.server_id.in_(server_ids))
        .order_by(Membership.joined_at, Membership.user_id)
    )
    for row in rows:
        found[row.server_id].append(row.user_id)
    return found


async def groups_of(
    session: AsyncSession, user_id: int, only: int | None = None
) -> list[GroupConversationRow]:
    """The groups the user takes part in (or just `only`, if they do)."""
    query = (
        select(GroupConversationRow)
        .join(Membership, Membership.server_id == GroupConversationRow.server_id)
        .where(Membership.user_id == user_id)
        .execution_options(populate_existing=True)
    )
    if only is not None:
        query = query.where(GroupConversationRow.server_id == only)
    return list(await session.scalars(query))
