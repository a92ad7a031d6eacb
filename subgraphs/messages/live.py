"""A channel's live message events: who may receive the shared `messageEvents` stream (the router's
fan-out tier asks, kernel/web/live_access.py), and one subscriber's stream (kernel/web/streams.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import strawberry

from subgraphs.kernel.errors import forbidden, not_found
from subgraphs.kernel.events.catalogue import Event, topic_for_channel, topic_for_server
from subgraphs.kernel.events.outbox import Cursor
from subgraphs.kernel.tenancy import access
from subgraphs.kernel.tenancy.access import ChannelAccess
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web import streams
from subgraphs.kernel.web.context import BeepContext
from subgraphs.kernel.web.live_access import channel_members_holding
from subgraphs.messages import events, link_previews
from subgraphs.messages.loaders import MessagesLoaders
from subgraphs.messages.types import (
    LinkPreview,
    Message,
    MessageCreated,
    MessageDeleted,
    MessageEvent,
    MessageLinkPreviewsUpdated,
    MessageUpdated,
    PinChanged,
    ReactionChanged,
    TypingEvent,
)

message_events_access = channel_members_holding(
    Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY,
    lost="You no longer have access to this channel.",
)

# Safety net behind AccessChanged announcements: every access change is announced (relayed from the
# outbox), and a subscriber is re-checked at least this often besides.
RECHECK_SECONDS = 30.0


async def channel_access(ctx: BeepContext[MessagesLoaders], channel_id: int) -> ChannelAccess | None:
    return await ctx.read_fresh(channel_id, lambda s: access.channel_access(s, channel_id, ctx.user_id))


def to_graphql(event: Event) -> MessageEvent | None:
    found = Cursor.of(event)
    cursor = str(found) if found is not None else None
    if isinstance(event, events.MessageCreated):
        return MessageCreated(message=Message.from_event(event), cursor=cursor)
    if isinstance(event, events.MessageUpdated):
        return MessageUpdated(message=Message.from_event(event), cursor=cursor)
    if isinstance(event, events.MessageDeleted):
        return MessageDeleted(
            message_id=strawberry.ID(str(event.message_id)),
            channel_id=strawberry.ID(str(event.channel_id)),
            cursor=cursor,
        )
    if isinstance(event, events.ReactionChanged):
        return ReactionChanged(
            message_id=strawberry.ID(str(event.message_id)),
            emoji=event.emoji,
            added=event.added,
            user_id=event.user_id,
            cursor=cursor,
        )
    if isinstance(event, events.TypingStarted):
        return TypingEvent(expires_at=event.expires_at, user_id=event.user_id)
    if isinstance(event, link_previews.LinkPreviewsChanged):
        return MessageLinkPreviewsUpdated(
            message_id=strawberry.ID(str(event.message_id)),
            link_previews=[LinkPreview.from_preview(p) for p in link_previews.from_json(event.previews)],
            cursor=cursor,
        )
    if isinstance(event, events.PinChanged):
        return PinChanged(message_id=strawberry.ID(str(event.message_id)), pinned=event.pinned, cursor=cursor)
    return None


def _without_names(event: Event) -> Event:
    """A replayed message without the names its send read: a replay shows today's names, as history does."""
    if isinstance(event, events.MessageCreated):
        return dataclasses.replace(event, author_username=None, channel_name=None)
    return event


async def _store_now(ctx: BeepContext[MessagesLoaders], channel: int) -> int:
    uow = UnitOfWork(ctx.runtime.database, ctx.runtime.bus)
    try:
        return await uow.shard_for(channel)
    finally:
        await uow.close()


async def message_stream(
    ctx: BeepContext[MessagesLoaders], channel: int, after: Cursor | None
) -> streams.LiveStream[MessageEvent]:
    """The subscriber's stream of a channel they can read (NOT_FOUND otherwise): its events, replayed
    after `after` first; FORBIDDEN once they lose access, NOT_FOUND once the channel is deleted."""
    found = await channel_access(ctx, channel)
    if found is None or not found.can_read:
        raise not_found("No such channel.")

    async def check() -> None:
        now = await channel_access(ctx, channel)
        if now is None:
            raise not_found("This channel was deleted.")
        if not now.can_read:
            raise forbidden("You no longer have access to this channel.")

    async def opened() -> list[MessageEvent]:
        now = await channel_access(ctx, channel)
        if now is None or not now.can_read:
            raise not_found("No such channel.")
        return []

    async def replay(cursor: Cursor) -> AsyncIterator[Event]:
        streams.cursor_expired_if_moved(cursor, await _store_now(ctx, channel), "channel")
        sessions = streams.store_sessions(ctx.runtime.database)
        async for event in streams.stored_after(sessions, topic_for_channel(channel), cursor):
            yield _without_names(event)

    async def live_from() -> Cursor:
        return await streams.published_position(
            streams.store_sessions(ctx.runtime.database), await _store_now(ctx, channel)
        )

    return streams.LiveStream(
        # The channel's topic for its events, the server's for AccessChanged (roles, membership).
        topics=(topic_for_channel(channel), topic_for_server(found.server.server_id)),
        render=streams.mapped(to_graphql),
        opened=opened,
        guard=streams.Guard(check, channel_id=channel, every=RECHECK_SECONDS),
        replay=replay,
        after=after,
        live_from=live_from,
    )
