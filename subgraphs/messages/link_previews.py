"""Link previews of messages: stored per message, produced after the send by the worker. (Discord calls
them link embeds; Beep's `embeds` are the rich embeds webhooks and bots post, subgraphs/messages/embeds.py.)

`LinkPreviewer` is a durable outbox consumer (kernel/events/relay.py): for each sent or edited message it
finds the links (media/previews/providers.py), fetches their previews with the SSRF-safe fetcher, replaces the
message's previews and announces `LinkPreviewsChanged` on the channel, so open clients update it live.
No previews when the author lacks Embed Links in the channel (a server switches previews off by taking
the permission from @everyone), when the message suppresses them, or when it changed since the event. A
webhook's message is previewed when @everyone holds Embed Links in its channel (a webhook is no member:
it posts with @everyone's permissions there, as on Discord; View Channel is not needed).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from functools import partial

import sqlalchemy as sa
from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import ShardBase
from db.engines import Database
from media.previews.metadata import Preview
from media.previews.providers import links_to_preview
from media.previews.service import PreviewService
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.events.bus import EventBus
from subgraphs.kernel.events.catalogue import Event, topic_for_channel
from subgraphs.kernel.tenancy import access
from subgraphs.kernel.tenancy.access_checks import allowed_channel
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork, retrying_moves
from subgraphs.messages.events import (
    LinkPreviewsChanged,
    LinkPreviewsRequested,
    MessageCreated,
    MessageUpdated,
)
from subgraphs.messages.models import MessageRow
from subgraphs.messages.service import access_message_to_change

log = logging.getLogger("beep.link_previews")
CONCURRENT_FETCHES = 8


class LinkPreviewRow(ShardBase):
    __tablename__ = "message_link_previews"
    __table_args__ = (Index("ix_message_link_previews_message_id", "message_id", "position"),)

    message_id: Mapped[int] = mapped_column(
        ForeignKey("shard.messages.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(primary_key=True)  # the link's order in the message
    server_id: Mapped[int] = mapped_column()
    url: Mapped[str] = mapped_column(String(2048))
    data: Mapped[str] = mapped_column(Text)  # the Preview as JSON


def to_json(previews: Sequence[Preview]) -> str:
    return json.dumps([asdict(p) for p in previews], separators=(",", ":"))


def from_json(raw: str) -> list[Preview]:
    return [Preview(**item) for item in json.loads(raw)]


async def previews_of(session: AsyncSession, message_ids: Sequence[int]) -> dict[int, list[Preview]]:
    rows = await session.scalars(
        sa.select(LinkPreviewRow)
        .where(LinkPreviewRow.message_id.in_(message_ids))
        .order_by(LinkPreviewRow.position)
    )
    found: dict[int, list[Preview]] = {}
    for row in rows:
        found.setdefault(row.message_id, []).append(Preview(**json.loads(row.data)))
    return found


async def replace_previews(uow: UnitOfWork, message: MessageRow, previews: Sequence[Preview]) -> None:
    """Store `previews` as the message's link previews and announce them (inside `uow.atomic()`)."""
    session = await uow.for_entity(message.channel_id)
    await session.execute(sa.delete(LinkPreviewRow).where(LinkPreviewRow.message_id == message.id))
    if previews:
        await session.execute(
            sa.insert(LinkPreviewRow),
            [
                {
                    "message_id": message.id,
                    "position": n,
                    "server_id": message.server_id,
                    "url": p.url,
                    "data": json.dumps(asdict(p)),
                }
                for n, p in enumerate(previews)
            ],
        )
    uow.emit(
        topic_for_channel(message.channel_id),
        LinkPreviewsChanged(message.id, message.channel_id, message.server_id, to_json(previews)),
    )


Wanted = MessageCreated | MessageUpdated | LinkPreviewsRequested  # what (re)computes a message's previews


class LinkPreviewer:
    """The `link-previews` consumer."""

    name = "link-previews"

    def __init__(self, database: Database, bus: EventBus, previews: PreviewService) -> None:
        self._database = database
        self._bus = bus
        self.previews = previews
        self._limit = asyncio.Semaphore(CONCURRENT_FETCHES)

    def _uow(self) -> UnitOfWork:
        return UnitOfWork(self._database, self._bus)

    async def handle(self, _store: int, events: list[Event]) -> None:
        latest: dict[int, Wanted] = {}
        for event in events:  # an edit in the same batch supersedes the send
            if isinstance(event, MessageCreated | MessageUpdated | LinkPreviewsRequested):
                latest[event.message_id] = event
        await asyncio.gather(*(self._one(event) for event in latest.values()))

    async def _one(self, event: Wanted) -> None:
        if isinstance(event, MessageCreated) and not links_to_preview(event.content):
            # Most messages: no link in the text it was sent with, no preview shown before. Decided from
            # the event alone (the profiled send path read each message back for this).
            return
        uow = self._uow()
        try:
            message = await self._still_current(uow, event)
            if message is None:
                return
            links = [] if message.suppress_embeds else links_to_preview(message.content)
            if links and not await self._may_embed(uow, message):
                links = []
            if not links and isinstance(event, MessageCreated):
                return  # nothing to show, nothing shown before
            previews = [
                p for p in await asyncio.gather(*(self._fetch(url) for url in links)) if p is not None
            ]
            if not previews and isinstance(event, MessageCreated):
                return
            await retrying_moves(uow, partial(self._store, uow, event, previews))
        finally:
            await uow.close()

    async def _store(self, uow: UnitOfWork, event: Wanted, previews: list[Preview]) -> None:
        current = await self._still_current(uow, event)
        if current is None:
            return
        session = await uow.for_entity(current.channel_id)
        await access.hold_tenant(session, current.server_id)  # not onto the old copy of a moving tenant
        shown = (await previews_of(session, [current.id])).get(current.id, [])
        if shown != previews:  # an edit that changes no link announces nothing
            await replace_previews(uow, current, previews)

    async def _fetch(self, url: str) -> Preview | None:
        async with self._limit:
            return await self.previews.preview(url)

    async def _still_current(self, uow: UnitOfWork, event: Wanted) -> MessageRow | None:
        """The message, unless it was deleted or edited since this event (the later event handles it)."""
        session = await uow.for_entity(event.channel_id)
        message = await session.get(MessageRow, event.message_id, populate_existing=True)
        if message is None or message.content != event.content:
            return None
        return message

    async def _may_embed(self, uow: UnitOfWork, message: MessageRow) -> bool:
        if message.webhook_id is not None:
            # A webhook is no member: it posts with @everyone's permissions in its channel, as on Discord
            # (so a server or channel taking Embed Links from @everyone turns its previews off too).
            session = await uow.for_entity(message.channel_id)
            everyone = await access.everyone_channel_permissions(session, message.channel_id)
            return everyone is not None and Permission.EMBED_LINKS in everyone
        return (
            await allowed_channel(uow, message.author_id, message.channel_id, needs=Permission.EMBED_LINKS)
            is not None
        )


async def set_suppressed(
    uow: UnitOfWork, principal: Principal, message_id: int, suppress: bool
) -> MessageRow:
    """Hide a message's previews (they are deleted) or bring them back (fetched again)."""
    message, _channel = await access_message_to_change(  # its errors name "id", not messageId: as ever
        uow, principal.user_id, message_id, moderators=Permission.MANAGE_MESSAGES
    )
    if message.suppress_embeds == suppress:
        return message
    message.suppress_embeds = suppress
    topic = topic_for_channel(message.channel_id)
    if suppress:
        await replace_previews(uow, message, [])
    else:
        uow.emit(
            topic, LinkPreviewsRequested(message.id, message.channel_id, message.server_id, message.content)
        )
    return message
