"""SQL for the friends context, on the directory session it is given."""

from __future__ import annotations

from sqlalchemy import select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.friends.models import FriendshipRow


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
