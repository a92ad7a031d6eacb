"""SQL for the messages context, on the shard session it is given."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import sqlalchemy as sa
from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.kernel.events import outbox
from subgraphs.kernel.tenancy import access_versions, directory_tables
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


def _insert_announced() -> sa.Select[int]:
    """The message and its event's outbox row in one statement, written only while its server's access is
    unchanged, its tenant live here and its channel where and as named when checked
    (`access_versions.unchanged_tenant`, `unchanged_channel`); selects how many messages it wrote (0 or
    1). PostgreSQL only (SQLite has no INSERT in a WITH)."""
    tenant = access_versions.unchanged_tenant()
    channel = access_versions.unchanged_channel()
    columns = list(_MESSAGES.columns)
    message = (
        insert(_MESSAGES)
        .from_select(
            [c.key for c in columns],
            select(*(sa.bindparam(c.key, type_=c.type) for c in columns)).where(
                sa.exists(select(tenant.c.id)), sa.exists(select(channel.c.id))
            ),
        )
        .returning(_MESSAGES.c.id)
        .cte("message")
    )
    events = outbox.SHARD_TABLES.outbox
    event_columns = ("topic", "payload", "created_at", "trace_context")
    event = (
        insert(events)
        .from_select(
            list(event_columns),
            select(
                *(sa.bindparam(f"event_{name}", type_=events.c[name].type) for name in event_columns)
            ).select_from(message),
        )
        .returning(events.c.id)
        .cte("event")
    )
    return select(sa.func.count()).select_from(event)


_INSERT_ANNOUNCED = _insert_announced()


async def insert_announced_message(
    session: AsyncSession,
    message: MessageRow,
    event: dict[str, object],
    checked: access_versions.ChannelForSend,
) -> bool:
    """`insert_message` and the outbox row `event` (`outbox.rows_for`) as one statement, for a session in
    autocommit (the statement is the send's whole transaction); False when it wrote nothing, because the
    server's access version is no longer `checked`'s, its tenant has moved, or its channel moved or was
    renamed (check again). A nonce taken meanwhile raises `IntegrityError`, as `insert_message` does."""
    placement = checked.placement
    assert placement is not None, "a send's channel exists"
    values: dict[str, object] = {c.key: getattr(message, c.key) for c in _MESSAGES.columns}
    values.update({f"event_{name}": value for name, value in event.items()})
    # `server_id` and `channel_id` are the message's own column values.
    values.update(
        access_version=checked.version,
        channel_kind=placement.kind,
        channel_parent_id=placement.parent_id,
        channel_synced=placement.permissions_synced,
        channel_name=checked.name,
    )
    return bool(await session.scalar(_INSERT_ANNOUNCED, values))


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
