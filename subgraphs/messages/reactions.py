"""Rules of reactions: members who can read a channel and have Add Reactions react with unicode emoji.
Never commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import emoji as emoji_data
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import ErrorCode, ValidationFailed
from subgraphs.kernel.events.catalogue import topic_for_channel
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.messages import service
from subgraphs.messages.events import ReactionChanged
from subgraphs.messages.models import MessageRow, ReactionRow

MAX_DISTINCT_EMOJI = 20  # per message, like Discord
MAX_EMOJI_LENGTH = 64  # bytes of UTF-8 (family and flag sequences run long)


@dataclass(frozen=True)
class ReactionSummary:
    emoji: str
    count: int
    me: bool


def check_emoji(raw: str) -> str:
    """One unicode emoji (with its modifiers and joiners), nothing else."""
    value = raw.strip()
    if not value or len(value.encode()) > MAX_EMOJI_LENGTH or not emoji_data.is_emoji(value):
        raise ValidationFailed(
            "A reaction is one unicode emoji.", code=ErrorCode.INVALID_FORMAT, field="emoji"
        )
    return value


async def add_reaction(uow: UnitOfWork, principal: Principal, message_id: int, raw_emoji: str) -> MessageRow:
    value = check_emoji(raw_emoji)
    message, _channel = await service.access_message(
        uow,
        principal.user_id,
        message_id,
        needs=Permission.ADD_REACTIONS,
        refusal="You may not add reactions in this channel.",
    )
    session = await uow.for_entity(message_id)
    key = (message.id, principal.user_id, value)
    if await session.get(ReactionRow, key) is not None:
        return message  # already there: nothing changes, nothing is announced
    used = set(
        await session.scalars(
            sa.select(ReactionRow.emoji).where(ReactionRow.message_id == message.id).distinct()
        )
    )
    if value not in used and len(used) >= MAX_DISTINCT_EMOJI:
        raise ValidationFailed(
            f"A message has at most {MAX_DISTINCT_EMOJI} different reactions.",
            code=ErrorCode.LIMIT_REACHED,
            field="emoji",
        )
    session.add(
        ReactionRow(
            message_id=message.id,
            user_id=principal.user_id,
            emoji=value,
            server_id=message.server_id,
            created_at=datetime.now(UTC),
        )
    )
    await session.flush()
    _announce(uow, message, principal.user_id, value, added=True)
    return message


async def remove_reaction(
    uow: UnitOfWork, principal: Principal, message_id: int, raw_emoji: str
) -> MessageRow:
    """Your own reaction; removing one you did not add changes nothing."""
    value = check_emoji(raw_emoji)
    message, _channel = await service.access_message(uow, principal.user_id, message_id)
    session = await uow.for_entity(message_id)
    row = await session.get(ReactionRow, (message.id, principal.user_id, value))
    if row is not None:
        await session.delete(row)
        await session.flush()
        _announce(uow, message, principal.user_id, value, added=False)
    return message


def _announce(uow: UnitOfWork, message: MessageRow, user_id: int, value: str, *, added: bool) -> None:
    uow.emit(
        topic_for_channel(message.channel_id),
        ReactionChanged(message.id, message.channel_id, message.server_id, user_id, value, added),
    )


async def summaries(
    session: AsyncSession, message_ids: list[int], viewer_id: int | None
) -> dict[int, list[ReactionSummary]]:
    """Per message: each emoji with its count and whether the viewer reacted with it (one query)."""
    mine = sa.func.max(sa.case((ReactionRow.user_id == (viewer_id or 0), 1), else_=0))
    rows = await session.execute(
        sa.select(
            ReactionRow.message_id,
            ReactionRow.emoji,
            sa.func.count(),
            mine,
            sa.func.min(ReactionRow.created_at),
        )
        .where(ReactionRow.message_id.in_(message_ids))
        .group_by(ReactionRow.message_id, ReactionRow.emoji)
        .order_by(ReactionRow.message_id, sa.func.min(ReactionRow.created_at))
    )
    found: dict[int, list[ReactionSummary]] = {i: [] for i in message_ids}
    for message_id, value, count, me, _first in rows:
        found[message_id].append(ReactionSummary(value, int(count), bool(me)))
    return found
