"""Rules of pins: Pin Messages (or Manage Messages) pins and unpins; at most 50 per channel.
Never commits."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import ErrorCode, ValidationFailed
from subgraphs.kernel.events.catalogue import topic_for_channel
from subgraphs.kernel.tenancy.access_checks import READ, access_channel, or_none
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.messages import service
from subgraphs.messages.events import PinChanged
from subgraphs.messages.models import MessageRow

MAX_PINS = 50


async def set_pinned(uow: UnitOfWork, principal: Principal, message_id: int, *, pinned: bool) -> MessageRow:
    message, _channel = await service.access_message(
        uow,
        principal.user_id,
        message_id,
        needs=(Permission.PIN_MESSAGES, Permission.MANAGE_MESSAGES),
        refusal="You need Pin Messages or Manage Messages in this channel.",
        refusal_field="id",  # "not found" names messageId, as it always has
    )
    if (message.pinned_at is not None) == pinned:
        return message  # already so
    session = await uow.for_entity(message_id)
    if pinned:
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(MessageRow)
            .where(MessageRow.channel_id == message.channel_id, MessageRow.pinned_at.is_not(None))
        )
        if (count or 0) >= MAX_PINS:
            raise ValidationFailed(
                f"A channel has at most {MAX_PINS} pins: unpin one first.",
                code=ErrorCode.LIMIT_REACHED,
                field="id",
            )
    message.pinned_at = datetime.now(UTC) if pinned else None
    message.pinned_by = principal.user_id if pinned else None
    await session.flush()
    uow.emit(
        topic_for_channel(message.channel_id),
        PinChanged(message.id, message.channel_id, message.server_id, pinned, principal.user_id),
    )
    return message


async def pins_of(uow: UnitOfWork, user_id: int | None, channel_id: int) -> list[MessageRow] | None:
    """A channel's pins, most recently pinned first; None if the user cannot read the channel."""
    if await or_none(access_channel(uow, user_id, channel_id, seen_with=READ)) is None:
        return None
    session = await uow.for_entity(channel_id)
    rows = await session.scalars(
        sa.select(MessageRow)
        .where(MessageRow.channel_id == channel_id, MessageRow.pinned_at.is_not(None))
        .order_by(MessageRow.pinned_at.desc(), MessageRow.id.desc())
        .limit(MAX_PINS)
    )
    return list(rows)
