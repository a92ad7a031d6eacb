"""SQL for the channels context, on the shard session it is given."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.channels.models import ChannelRow, OverwriteRow


async def channels_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, ChannelRow]:
    rows = await session.scalars(select(ChannelRow).where(ChannelRow.id.in_(ids)))
    return {row.id: row for row in rows}


async def channel_by_id(session: AsyncSession, channel_id: int) -> ChannelRow | None:
    return await session.get(ChannelRow, channel_id)


async def server_of_channel(session: AsyncSession, channel_id: int) -> int | None:
    return await session.scalar(select(ChannelRow.server_id).where(ChannelRow.id == channel_id))


async def channels_of_servers(session: AsyncSession, server_ids: Sequence[int]) -> list[ChannelRow]:
    rows = await session.scalars(
        select(ChannelRow)
        .where(ChannelRow.server_id.in_(server_ids))
        .order_by(ChannelRow.server_id, ChannelRow.position, ChannelRow.id)
    )
    return list(rows)


async def count_channels(session: AsyncSession, server_id: int) -> int:
    return await session.scalar(select(func.count()).where(ChannelRow.server_id == server_id)) or 0


async def next_position(session: AsyncSession, server_id: int, parent_id: int | None) -> int:
    parent_match = ChannelRow.parent_id.is_(None) if parent_id is None else ChannelRow.parent_id == parent_id
    highest = await session.scalar(
        select(func.max(ChannelRow.position)).where(ChannelRow.server_id == server_id, parent_match)
    )
    return 0 if highest is None else highest + 1


def add_channel(session: AsyncSession, channel: ChannelRow) -> None:
    session.add(channel)


async def delete_channels(session: AsyncSession, ids: Sequence[int]) -> None:
    """Their messages, overwrites and webhooks go by the foreign keys' ON DELETE CASCADE."""
    await session.execute(delete(ChannelRow).where(ChannelRow.id.in_(ids)))


async def overwrites_of(session: AsyncSession, channel_ids: Sequence[int]) -> list[OverwriteRow]:
    rows = await session.scalars(
        select(OverwriteRow)
        .where(OverwriteRow.channel_id.in_(channel_ids))
        .order_by(OverwriteRow.channel_id, OverwriteRow.target_kind, OverwriteRow.target_id)
    )
    return list(rows)


async def has_overwrites(session: AsyncSession, channel_id: int) -> bool:
    return bool(await session.scalar(select(exists().where(OverwriteRow.channel_id == channel_id))))


async def overwrite(session: AsyncSession, channel_id: int, kind: str, target_id: int) -> OverwriteRow | None:
    return await session.get(OverwriteRow, (channel_id, kind, target_id))


def add_overwrite(session: AsyncSession, row: OverwriteRow) -> None:
    session.add(row)


async def delete_overwrite(session: AsyncSession, row: OverwriteRow) -> None:
    await session.delete(row)
