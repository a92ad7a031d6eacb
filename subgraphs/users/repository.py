"""SQL for the users context, on the directory session it is given."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.users.models import RefreshSessionRow, UserRow


async def users_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, UserRow]:
    rows = await session.scalars(select(UserRow).where(UserRow.id.in_(ids)))
    return {row.id: row for row in rows}


async def user_by_email(session: AsyncSession, email: str) -> UserRow | None:
    return await session.scalar(select(UserRow).where(UserRow.email == email))


async def username_or_email_taken(session: AsyncSession, username_key: str, email: str) -> tuple[bool, bool]:
    rows = (
        await session.execute(
            select(UserRow.username_key, UserRow.email).where(
                (UserRow.username_key == username_key) | (UserRow.email == email)
            )
        )
    ).all()
    return any(r.username_key == username_key for r in rows), any(r.email == email for r in rows)


async def insert_user(session: AsyncSession, user: UserRow) -> bool:
    """False when a concurrent sign-up took the username or e-mail first (unique constraint)."""
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()  # the sign-up transaction had written nothing else yet
        return False
    return True


async def insert_refresh_session(
    session: AsyncSession, session_id: int, user_id: int, token_hash: str, expires_at: datetime
) -> None:
    session.add(
        RefreshSessionRow(id=session_id, user_id=user_id, token_hash=token_hash, expires_at=expires_at)
    )
