"""Read state: where each member stopped reading each channel, and what is unread since. Never commits.

Counts are capped (COUNT_CAP): a badge shows "99+" long before that, and counting a channel's whole
backlog for someone who never read it would cost a scan per channel per request.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import NotFound
from subgraphs.kernel.tenancy import access
from subgraphs.kernel.tenancy.access_checks import READ, access_channel
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.messages.models import MessageRow, ReadStateRow

COUNT_CAP = 1000


@dataclass(frozen=True)
class ChannelReadState:
    channel_id: int
    last_read_id: int | None
    unread_count: int  # capped at COUNT_CAP
    mention_count: int  # messages since then that ping the member (or everyone); capped


async def mark_read(
    uow: UnitOfWork, principal: Principal, channel_id: int, message_id: int | None
) -> ChannelReadState:
    """Read up to `message_id` (default: the newest message). Never moves backwards."""
    found = await access_channel(uow, principal.user_id, channel_id, seen_with=READ)
    session = await uow.for_entity(channel_id)
    if message_id is not None:
        message = await session.get(MessageRow, message_id)
        if message is None or message.channel_id != channel_id:
            raise NotFound("No such message in this channel.", field="messageId")
    else:
        message_id = await session.scalar(
            sa.select(sa.func.max(MessageRow.id)).where(MessageRow.channel_id == channel_id)
        )
    row = await session.get(ReadStateRow, (channel_id, principal.user_id))
    if message_id is not None:
        if row is None:
            row = ReadStateRow(
                channel_id=channel_id,
                user_id=principal.user_id,
                server_id=found.server.server_id,
                last_read_id=message_id,
            )
            session.add(row)
        elif message_id > row.last_read_id:
            row.last_read_id = message_id
        await session.flush()
    return (await _states(session, [channel_id], principal.user_id))[0]


async def read_states(uow: UnitOfWork, user_id: int | None, server_id: int) -> list[ChannelReadState] | None:
    """The member's read state of every text channel of the server they can read; None if not a member."""
    if user_id is None:
        return None
    return await read_states_in(await uow.for_entity(server_id), user_id, server_id)


async def read_states_in(
    session: AsyncSession, user_id: int, server_id: int
) -> list[ChannelReadState] | None:
    """`read_states` on a session of the server's shard that the caller provides (a short-lived one, for
    a caller going through many servers: `uow.reading`)."""
    if server_id not in await access.member_server_ids(session, [server_id], user_id):
        return None
    visible = await access.visible_channels_of_server(session, server_id, user_id)
    readable = [
        channel_id
        for channel_id, found in (await access.channel_accesses(session, sorted(visible), user_id)).items()
        if found.kind == "TEXT" and found.can_read
    ]
    return await _states(session, sorted(readable), user_id)


async def _states(session: AsyncSession, channel_ids: list[int], user_id: int) -> list[ChannelReadState]:
    marks = {
        row.channel_id: row.last_read_id
        for row in await session.scalars(
            sa.select(ReadStateRow).where(
                ReadStateRow.channel_id.in_(channel_ids), ReadStateRow.user_id == user_id
            )
        )
    }
    states = []
    for channel_id in channel_ids:
        since = marks.get(channel_id, 0)
        unread = (
            sa.select(MessageRow.id, MessageRow.content, MessageRow.mention_everyone, MessageRow.author_id)
            .where(
                MessageRow.channel_id == channel_id, MessageRow.id > since, MessageRow.author_id != user_id
            )
            .order_by(MessageRow.id.desc())
            .limit(COUNT_CAP)
            .subquery()
        )
        pinged = sa.or_(unread.c.mention_everyone, unread.c.content.contains(f"<@{user_id}>"))
        count, mentions = (
            await session.execute(
                sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((pinged, 1), else_=0)), 0))
            )
        ).one()
        states.append(ChannelReadState(channel_id, marks.get(channel_id), int(count), int(mentions)))
    return states
