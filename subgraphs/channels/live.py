"""One subscriber's live streams of a channel (kernel/web/streams.py): its member list, its voice call."""

from __future__ import annotations

from typing import Any

from media.voice.errors import VoiceRefused
from media.voice.room import ParticipantState
from subgraphs.channels import members, voice_service
from subgraphs.channels.events import VoiceStatesChanged
from subgraphs.channels.types import ChannelMemberEvent
from subgraphs.kernel.errors import forbidden, not_found
from subgraphs.kernel.events.catalogue import Event, topic_for_channel, topic_for_server
from subgraphs.kernel.tenancy import access
from subgraphs.kernel.tenancy.access import ChannelAccess
from subgraphs.kernel.web import streams
from subgraphs.kernel.web.context import BeepContext


async def fresh_access(ctx: BeepContext[Any], channel_id: int) -> ChannelAccess | None:
    return await ctx.read_fresh(channel_id, lambda s: access.channel_access(s, channel_id, ctx.user_id))


async def _viewable(ctx: BeepContext[Any], channel_id: int) -> ChannelAccess:
    """The subscriber's access to a channel they can view; NOT_FOUND otherwise (missing or hidden alike)."""
    found = await fresh_access(ctx, channel_id)
    if found is None or not found.can_view:
        raise not_found("No such channel.")
    return found


async def member_stream(ctx: BeepContext[Any], channel: int) -> streams.LiveStream[ChannelMemberEvent]:
    """Live changes of a channel's member list, from the server's topic. The member-list rules
    (channels/members.py) check access themselves: FORBIDDEN on losing the view, NOT_FOUND once deleted."""
    found = await _viewable(ctx, channel)
    rules = members.ChannelMemberStream(
        channel,
        viewers=lambda user_ids: ctx.read_fresh(
            channel, lambda s: access.channel_viewers(s, channel, user_ids)
        ),
        own_access=lambda: fresh_access(ctx, channel),
        parent_id=found.parent_id,
    )

    async def opened() -> list[ChannelMemberEvent]:
        await _viewable(ctx, channel)
        return []

    async def render(event: Event) -> list[ChannelMemberEvent]:
        try:
            views = await rules.handle(event)
        except members.ChannelGone:
            raise not_found("This channel was deleted.") from None
        except members.ViewLost:
            raise forbidden("You can no longer view this channel.") from None
        return [
            ChannelMemberEvent(change=v.change, connected=v.connected, status=v.status, user_id=v.user_id)
            for v in views
        ]

    return streams.LiveStream(
        topics=(topic_for_server(found.server.server_id),), render=render, opened=opened
    )


async def voice_stream(ctx: BeepContext[Any], channel: int) -> streams.LiveStream[list[ParticipantState]]:
    """A voice channel's participants now, then after every change. Each change is checked against the
    subscriber's view of the channel before it is delivered (FORBIDDEN once lost), as is every access
    change announced on the server's topic."""
    found = await _viewable(ctx, channel)
    owner = voice_service.directory_for(ctx.runtime).owner(channel)

    async def check() -> None:
        now = await fresh_access(ctx, channel)
        if now is None or not now.can_view:
            raise forbidden("You can no longer view this channel.")

    async def opened() -> list[list[ParticipantState]]:
        try:
            return [await owner.states(channel)]
        except VoiceRefused:
            return [[]]

    async def render(event: Event) -> list[list[ParticipantState]]:
        if isinstance(event, VoiceStatesChanged) and event.channel_id == channel:
            return [event.states()]
        return []

    return streams.LiveStream(
        topics=(topic_for_channel(channel), topic_for_server(found.server.server_id)),
        render=render,
        opened=opened,
        guard=streams.Guard(check, every=0),
    )
