"""What a member's server-wide stream shows: changes of the server, its roles, members and channels —
filtered per viewer, so a channel they cannot see is never named (not created, not renamed, not deleted).

The stream keeps the set of channels its viewer can see. A channel event is shown when the channel is
in that set (after re-checking it); a channel leaving the set (hidden by an overwrite, deleted) is shown
as removed, one entering it as added. Access changes recompute the set.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from subgraphs.channels import events as channel_events
from subgraphs.kernel.errors import TopLevelCode, forbidden, not_found
from subgraphs.kernel.events.catalogue import AccessChanged, Event, topic_for_server
from subgraphs.kernel.ids import id_argument
from subgraphs.kernel.tenancy import access
from subgraphs.kernel.tenancy.access import ServerAccess
from subgraphs.kernel.web import streams
from subgraphs.kernel.web.context import BeepContext
from subgraphs.kernel.web.live_access import Verdict, everyone_denied, tenant_reading, verdict_of
from subgraphs.kernel.web.runtime import Runtime
from subgraphs.servers import events as server_events
from subgraphs.servers import repository

CHANNEL_CHANGES = (
    channel_events.ChannelUpdated,
    channel_events.ChannelMoved,
    channel_events.ChannelPermissionsChanged,
)


class ChannelChange(enum.Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    ADDED = "ADDED"  # it became visible to you
    REMOVED = "REMOVED"  # deleted, or hidden from you


class MemberChange(enum.Enum):
    JOINED = "JOINED"
    LEFT = "LEFT"
    KICKED = "KICKED"
    BANNED = "BANNED"


@dataclass(frozen=True)
class ServerChangedView:
    server_id: int


@dataclass(frozen=True)
class ServerDeletedView:
    server_id: int


@dataclass(frozen=True)
class ChannelView:
    channel_id: int
    change: ChannelChange


@dataclass(frozen=True)
class RoleView:
    role_id: int
    change: str  # CREATED | UPDATED | DELETED | ASSIGNED | UNASSIGNED
    user_id: int | None


@dataclass(frozen=True)
class MemberView:
    user_id: int
    change: MemberChange


View = ServerChangedView | ServerDeletedView | ChannelView | RoleView | MemberView


class AccessLost(Exception):
    """The viewer is no longer a member (or the server is gone): the stream ends."""

    def __init__(self, server_gone: bool) -> None:
        super().__init__("server deleted" if server_gone else "no longer a member")
        self.server_gone = server_gone


@dataclass
class ServerStream:
    """Per subscription: turns the server topic's events into what this viewer may see.

    `server_access` and `visible_channels` read fresh state (each with a short-lived session)."""

    server_id: int
    server_access: Callable[[], Awaitable[ServerAccess | None]]
    visible_channels: Callable[[], Awaitable[set[int]]]
    visible: set[int]

    async def handle(self, event: Event) -> list[View]:
        if isinstance(event, server_events.ServerDeleted):
            return [ServerDeletedView(self.server_id)]  # the last view: the stream ends after it
        if isinstance(event, AccessChanged):
            return await self._recheck(event.channel_id)
        if isinstance(event, server_events.ServerUpdated | server_events.OwnershipTransferred):
            return [ServerChangedView(self.server_id)]
        if isinstance(event, server_events.RolesChanged):
            return [RoleView(event.role_id, event.change, event.user_id)]
        if isinstance(event, server_events.MemberJoined):
            return [MemberView(event.user_id, MemberChange.JOINED)]
        if isinstance(event, server_events.MemberLeft):
            return [MemberView(event.user_id, MemberChange.LEFT)]
        if isinstance(event, server_events.MemberKicked):
            return [MemberView(event.user_id, MemberChange.KICKED)]
        if isinstance(event, server_events.MemberBanned):
            return [MemberView(event.user_id, MemberChange.BANNED)]
        if isinstance(event, channel_events.ChannelDeleted):
            if event.channel_id in self.visible:
                self.visible.discard(event.channel_id)
                return [ChannelView(event.channel_id, ChannelChange.REMOVED)]
            return []
        if isinstance(event, channel_events.ChannelCreated):
            return await self._channel(event.channel_id, ChannelChange.CREATED)
        if isinstance(
            event,
            channel_events.ChannelUpdated
            | channel_events.ChannelMoved
            | channel_events.ChannelPermissionsChanged,
        ):
            return await self._channel(event.channel_id, ChannelChange.UPDATED)
        return []

    async def _channel(self, channel_id: int, change: ChannelChange) -> list[View]:
        """Show a channel event only if the viewer can see that channel now; a moved or re-permissioned
        channel may have just appeared or disappeared for them."""
        was_visible = channel_id in self.visible
        now_visible = channel_id in await self.visible_channels()
        if now_visible:
            self.visible.add(channel_id)
            shown = change if was_visible or change is ChannelChange.CREATED else ChannelChange.ADDED
            return [ChannelView(channel_id, shown)]
        if was_visible:
            self.visible.discard(channel_id)
            return [ChannelView(channel_id, ChannelChange.REMOVED)]
        return []

    async def _recheck(self, channel_id: int | None) -> list[View]:
        found = await self.server_access()
        if found is None:
            raise AccessLost(server_gone=True)
        if not found.is_member:
            raise AccessLost(server_gone=False)
        now = await self.visible_channels()
        if channel_id is not None:  # only that channel's overwrites changed
            now = (self.visible - {channel_id}) | ({channel_id} & now)
        gained, lost = sorted(now - self.visible), sorted(self.visible - now)
        self.visible = set(now)
        views: list[View] = [ChannelView(c, ChannelChange.ADDED) for c in gained]
        return views + [ChannelView(c, ChannelChange.REMOVED) for c in lost]


async def server_events_access(
    runtime: Runtime, arguments: Mapping[str, Any], user_ids: Sequence[int], renewal: bool
) -> Verdict:
    """Who may receive a server's `serverEvents` (the router's fan-out tier asks, kernel/web/live_access.py):
    its members. The field is `@viewerDependent` (each member sees the channels they can see), so the
    tier renders it per user and shares it only between that user's sockets."""
    server = id_argument(str(arguments.get("serverId", "")), "serverId")
    async with tenant_reading(runtime, server) as session:
        found = await repository.members_among(session, server, user_ids)
    if found is None:
        gone = "This server was deleted." if renewal else "No such server."
        return everyone_denied(user_ids, TopLevelCode.NOT_FOUND, gone)
    lost = "You are no longer a member of this server."
    return verdict_of(user_ids, found, {server}, renewal=renewal, lost=lost, missing="No such server.")


async def _server_access(ctx: BeepContext[Any], server_id: int) -> ServerAccess | None:
    return await ctx.read_fresh(server_id, lambda s: access.server_access(s, server_id, ctx.user_id))


async def _visible_channels(ctx: BeepContext[Any], server_id: int) -> set[int]:
    return await ctx.read_fresh(
        server_id, lambda s: access.visible_channels_of_server(s, server_id, ctx.user_id)
    )


def server_stream(ctx: BeepContext[Any], server_id: int) -> streams.LiveStream[View]:
    """One member's stream of a server (kernel/web/streams.py): NOT_FOUND unless a member once subscribed,
    FORBIDDEN on leaving or removal, NOT_FOUND when the server is gone; it ends after ServerDeletedView."""
    rules = ServerStream(
        server_id,
        server_access=lambda: _server_access(ctx, server_id),
        visible_channels=lambda: _visible_channels(ctx, server_id),
        visible=set(),
    )

    async def opened() -> list[View]:
        # Subscribed first, then the starting state read: nothing between the two is missed.
        found = await _server_access(ctx, server_id)
        if found is None or not found.is_member:
            raise not_found("No such server.")
        rules.visible = await _visible_channels(ctx, server_id)
        return []

    async def render(event: Event) -> list[View]:
        try:
            return await rules.handle(event)
        except AccessLost as lost:
            if lost.server_gone:
                raise not_found("This server was deleted.") from None
            raise forbidden("You are no longer a member of this server.") from None

    return streams.LiveStream(
        topics=(topic_for_server(server_id),),
        render=render,
        opened=opened,
        last=lambda view: isinstance(view, ServerDeletedView),
    )
