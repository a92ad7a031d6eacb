"""SQL for the users context, on the directory session it is given."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.users.models import RefreshSessionRow, UserRow


async def users_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, UserRow]:
    rows = await session.scalars(select(UserRow).where(UserRow.id.in_(ids)))
    return {row.id: row for row in rows}


async def user_by_email(session: AsyncSession, email: str) -> UserRow | None:
    return await session.scalar(select(UserRow).where(UserRow.email == email))


async def username_or_email_taken(
    session: AsyncSession, username_key: str, email: str, *, exclude: int | None = None
) -> tuple[bool, bool]:
    query = select(UserRow.username_key, UserRow.email).where(
        (UserRow.username_key == username_key) | (UserRow.email == email)
    )
    if exclude is not None:
        query = query.where(UserRow.id != exclude)
    rows = (await session.execute(query)).all()
    return any(r.username_key == username_key for r in rows), any(r.email == email for r in rows)


async def save_user(session: AsyncSession, user: UserRow, *, new: bool) -> bool:
    """Flush the user; False when a concurrent request took the username or e-mail first (unique
    constraint). The failed flush rolls the whole transaction back, as the caller's error will."""
    if new:
        session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        return False
    return True


async def flush(session: AsyncSession) -> None:
    await session.flush()


async def search_by_username_prefix(
    session: AsyncSession, prefix: str, limit: int, after_id: int | None
) -> list[UserRow]:
    # LIKE with the wildcard escaped away from the input: '_' is a legal username character.
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = select(UserRow).where(UserRow.username_key.like(f"{escaped}%", escape="\\"))
    if after_id is not None:
        after_key = select(UserRow.username_key).where(UserRow.id == after_id).scalar_subquery()
        query = query.where(UserRow.username_key > after_key)
    return list(await session.scalars(query.order_by(UserRow.username_key).limit(limit)))


async def insert_refresh_session(
    session: AsyncSession,
    session_id: int,
    user_id: int,
    token_hash: str,
    expires_at: datetime,
    family_id: int | None = None,
) -> None:
    row = RefreshSessionRow(
        id=session_id,
        user_id=user_id,
        token_hash=token_hash,
        expires_at=expires_at,
        family_id=session_id if family_id is None else family_id,
    )
    session.add(row)


async def unexpired_refresh_session(session: AsyncSession, token_hash: str) -> RefreshSessionRow | None:
    """The session a refresh token names, revoked or not (a revoked one may be a replay)."""
    found = await session.scalar(select(RefreshSessionRow).where(RefreshSessionRow.token_hash == token_hash))
    if found is None or _aware(found.expires_at) <= datetime.now(UTC):
        return None
    return found


async def claim_refresh_session(session: AsyncSession, session_id: int) -> bool:
    """Revoke a refresh token for its rotation; False when another request spent it first (a
    conditional update, so two concurrent refreshes with one token cannot both succeed)."""
    result = await session.execute(
        update(RefreshSessionRow)
        .where(RefreshSessionRow.id == session_id, RefreshSessionRow.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def revoke_refresh_family(session: AsyncSession, family_id: int) -> None:
    await session.execute(
        update(RefreshSessionRow)
        .where(RefreshSessionRow.family_id == family_id, RefreshSessionRow.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )


async def live_refresh_session(session: AsyncSession, token_hash: str) -> RefreshSessionRow | None:
    found = await session.scalar(
        select(RefreshSessionRow).where(
            RefreshSessionRow.token_hash == token_hash, RefreshSessionRow.revoked_at.is_(None)
        )
    )
    if found is None or _aware(found.expires_at) <= datetime.now(UTC):
        return None
    return found


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes (stored in UTC).
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def revoke_refresh_sessions(session: AsyncSession, user_id: int) -> None:
    await session.execute(
        update(RefreshSessionRow)
        .where(RefreshSessionRow.user_id == user_id, RefreshSessionRow.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
