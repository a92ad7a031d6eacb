"""SQL for the webhooks context, on the session it is given."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.webhooks.models import BotRow, WebhookRow


async def webhooks_of_channel(session: AsyncSession, channel_id: int) -> list[WebhookRow]:
    rows = await session.scalars(
        select(WebhookRow)
        .where(WebhookRow.channel_id == channel_id, WebhookRow.deleted_at.is_(None))
        .order_by(WebhookRow.id)
    )
    return list(rows)


async def count_of_channel(session: AsyncSession, channel_id: int) -> int:
    found = await session.scalar(
        select(func.count())
        .select_from(WebhookRow)
        .where(WebhookRow.channel_id == channel_id, WebhookRow.deleted_at.is_(None))
    )
    return int(found or 0)


async def webhook_by_id(session: AsyncSession, webhook_id: int) -> WebhookRow | None:
    """Deleted ones (tombstones) included."""
    return await session.get(WebhookRow, webhook_id)


async def bots_of_server(session: AsyncSession, server_id: int) -> list[BotRow]:
    return list(
        await session.scalars(select(BotRow).where(BotRow.server_id == server_id).order_by(BotRow.user_id))
    )


async def bot_by_id(session: AsyncSession, user_id: int) -> BotRow | None:
    return await session.get(BotRow, user_id)
