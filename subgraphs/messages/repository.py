"""SQL for the messages context, on the shard session it is given."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.kernel.tenancy import directory_tables
from subgraphs.messages.models import MessageEditRow, MessageRow


async def messages_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, MessageRow]:
    rows = await session.scalars(select(MessageRow).where(MessageRow.id.in_(ids)))
    return {row.id: row for row in rows}


async def message_by_id(session: AsyncSession, message_id: int) -> MessageRow | None:
    return await session.get(MessageRow, message_id)


async def message_by_nonce(
    session: AsyncSession, channel_id: int, author_id: int, nonce: str
) -> MessageRow | None:
    return await session.scalar(
        select(MessageRow).where(
            MessageRow.channel_id == channel_id, MessageRow.author_id == author_id, MessageRow.nonce == nonce
        )
    )


async def page(
    session: AsyncSession, channel_id: int, *, before: int | None, after: int | None, limit: int
) -> list[MessageRow]:
    """Up to `limit` rows, newest first. With `after` (and no `before`) the rows right after the cursor are
    taken (oldest first in SQL, then reversed) so paging forward never skips messages."""
    query = select(MessageRow).where(MessageRow.channel_id == channel_id)
    if before is not None:
        query = query.where(MessageRow.id < before)
    if after is not None:
        query = query.where(MessageRow.id > after)
    if after is not None and before is None:
        rows = list(await session.scalars(query.order_by(MessageRow.id.asc()).limit(limit)))
        rows.reverse()
        return rows
    return list(await session.scalars(query.order_by(MessageRow.id.desc()).limit(limit)))


def add_message(session: AsyncSession, message: MessageRow) -> None:
    session.add(message)


_MESSAGES = cast(Table, MessageRow.__table__)
_INSERT_MESSAGE = insert(_MESSAGES)  # built once: no statement construction or cache key per send


async def insert_message(session: AsyncSession, message: MessageRow) -> None:
    """Write a new message now, as one Core INSERT: the ORM's flush (unit-of-work bookkeeping for a row
    nothing else in the request changes) was ~6% of the messages process on the send path. `message`
    stays outside the session; every column is taken from it (unset ones are NULL)."""
    await session.execute(_INSERT_MESSAGE, {c.key: getattr(message, c.key) for c in _MESSAGES.columns})


async def delete_messages(session: AsyncSession, message_ids: Sequence[int]) -> None:
    """One statement for a moderator's bulk deletion (reactions and edits cascade)."""
    await session.execute(
        delete(MessageRow).where(MessageRow.id.in_(message_ids)),
        execution_options={"synchronize_session": False},
    )


async def delete_message(session: AsyncSession, message: MessageRow) -> None:
    await session.delete(message)


# The friends context's blocks (directory), through the shared light reference
# (kernel/tenancy/directory_tables.py).
_user_blocks = directory_tables.user_blocks


async def blocked_among(directory: AsyncSession, viewer_id: int, author_ids: Sequence[int]) -> set[int]:
    """Those of `author_ids` the viewer blocked."""
    rows = await directory.scalars(
        select(_user_blocks.c.blocked_id).where(
            _user_blocks.c.blocker_id == viewer_id, _user_blocks.c.blocked_id.in_(author_ids)
        )
    )
    return set(rows)


async def edits_of(session: AsyncSession, message_id: int) -> list[MessageEditRow]:
    """A message's earlier versions, oldest first."""
    rows = await session.scalars(
        select(MessageEditRow).where(MessageEditRow.message_id == message_id).order_by(MessageEditRow.id)
    )
    return list(rows)
