"""SQL for the webhooks context, on the shard session it is given."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.webhooks.models import WebhookRow


async def webhooks_of_channel(session: AsyncSession, channel_id: int) -> list[WebhookRow]:
    rows = await session.scalars(
        select(WebhookRow).where(WebhookRow.channel_id == channel_id).order_by(WebhookRow.id)
    )
    return list(rows)
