"""Who is in a channel: the server's members who can view it, listed in pages and followed live.

The live part turns the server topic's events into member-list changes for one channel: a member
joining, leaving or getting or losing a role is re-checked against the channel (one batched evaluation
for that member); presence changes are passed on for members who can view it; a change that may
affect many members at once (a role's permissions, an overwrite) is announced as RESYNC, for the client
to reload the list — as Discord does with its member-list SYNC operations.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from subgraphs.channels import events as channel_events
from subgraphs.kernel.events.catalogue import AccessChanged, Event, PresenceChanged
from subgraphs.kernel.tenancy import access
from subgraphs.kernel.tenancy.access import ChannelAccess
from subgraphs.kernel.tenancy.access_checks import access_channel, or_none
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.servers import events as server_events

SCAN_BATCH = 500  # members evaluated per query round while filling a page


@dataclass(frozen=True)
class MemberPage:
    user_ids: list[int]
    has_next: bool


async def list_members(
    uow: UnitOfWork, viewer_id: int | None, channel_id: int, *, first: int, after_user_id: int
) -> MemberPage | None:
    """A page of the channel's members (ascending user id); None if the viewer cannot view it."""
    found = await or_none(access_channel(uow, viewer_id, channel_id))
    if found is None:
        return None
    session = await uow.for_entity(channel_id)
    picked: list[int] = []
    cursor = after_user_id
    while len(picked) <= first:
        batch = await access.member_ids_page(session, found.server.server_id, cursor, SCAN_BATCH)
        if not batch:
            break
        viewers = await access.channel_viewers(session, channel_id, batch)
        picked.extend(user_id for user_id in batch if user_id in viewers)
        if len(batch) < SCAN_BATCH:
            break
        cursor = batch[-1]
    return MemberPage(picked[:first], has_next=len(picked) > first)


class MemberListChange(enum.Enum):
    ADDED = "ADDED"  # joined, or can view the channel now
    REMOVED = "REMOVED"  # left, was removed, or cannot view it any more
    PRESENCE = "PRESENCE"  # connected, disconnected or changed their status
    RESYNC = "RESYNC"  # many members may have changed: reload the list


@dataclass(frozen=True)
class MemberListView:
    change: MemberListChange
    user_id: int | None = None
    connected: bool | None = None
    status: str | None = None


class ChannelGone(Exception):
    """The channel was deleted (or its server): the stream ends."""


class ViewLost(Exception):
    """The subscriber can no longer view the channel: the stream ends."""


_LEAVING = (server_events.MemberLeft, server_events.MemberKicked, server_events.MemberBanned)


@dataclass
class ChannelMemberStream:
    """Per subscription. `viewers(user_ids)`: which of them can view the channel now; `own_access()`:
    the subscriber's access (None: the channel is gone)."""

    channel_id: int
    viewers: Callable[[list[int]], Awaitable[set[int]]]
    own_access: Callable[[], Awaitable[ChannelAccess | None]]
    parent_id: int | None = None

    async def handle(self, event: Event) -> list[MemberListView]:
        if isinstance(event, server_events.ServerDeleted):
            raise ChannelGone
        if isinstance(event, channel_events.ChannelDeleted):
            if event.channel_id == self.channel_id:
                raise ChannelGone
            return []
        if isinstance(event, PresenceChanged):
            if event.user_id in await self.viewers([event.user_id]):
                return [
                    MemberListView(MemberListChange.PRESENCE, event.user_id, event.connected, event.status)
                ]
            return []
        if isinstance(event, server_events.MemberJoined):
            if event.user_id in await self.viewers([event.user_id]):
                return [MemberListView(MemberListChange.ADDED, event.user_id)]
            return []
        if isinstance(event, _LEAVING):
            return [MemberListView(MemberListChange.REMOVED, event.user_id)]
        if isinstance(event, server_events.RolesChanged):
            if event.user_id is None:  # a role itself changed: any of its members may be in or out now
                no_members_yet = event.change == "CREATED"
                return [] if no_members_yet else [MemberListView(MemberListChange.RESYNC)]
            visible = event.user_id in await self.viewers([event.user_id])
            change = MemberListChange.ADDED if visible else MemberListChange.REMOVED
            return [MemberListView(change, event.user_id)]
        if isinstance(event, channel_events.ChannelPermissionsChanged | channel_events.ChannelMoved):
            # Its own overwrites, or its folder's (which a synced channel follows), or a move in/out.
            if event.channel_id in (self.channel_id, self.parent_id):
                await self._check_own_access()
                return [MemberListView(MemberListChange.RESYNC)]
            return []
        if isinstance(event, AccessChanged) and event.channel_id in (None, self.channel_id):
            await self._check_own_access()
        return []

    async def _check_own_access(self) -> None:
        found = await self.own_access()
        if found is None:
            raise ChannelGone
        if not found.can_view:
            raise ViewLost
        self.parent_id = found.parent_id
