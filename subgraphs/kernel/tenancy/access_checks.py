"""The line a service function opens with: what it acts on, loaded and checked (Zulip's
`access_stream_by_id` / `access_message`, zerver/lib/streams.py and message.py).

    channel = await access_channel(uow, principal.user_id, channel_id, needs=Permission.MANAGE_MESSAGES,
                                   refusal="You need Manage Messages in this channel.")

Each `access_*` returns what it loaded, so the caller never loads it again, and refuses in two tiers:

- `NotFound` for what the viewer may not see: a missing thing and a hidden one get the same answer, so
  existence never leaks;
- `PermissionDenied` for what they see but may not do (`needs`, with the caller's `refusal` message).

A query answers null rather than an error: it wraps the same check in `or_none`. The permissions
themselves are computed in kernel/tenancy/access.py (the engine); this module states how a service applies
them. A service that must compute the access itself (on a session it has just locked) applies the same
rules with `check_channel` / `check_server`. A caller that refuses no viewer (a worker, the voice guard)
or answers with an error of its own asks `allowed_channel` (`allows` on an access in hand): the same rules
as a yes or no. Batch filters (loaders, search, live streams) test `ChannelAccess.can_view` / `can_read`
directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection
from typing import TypeVar

from subgraphs.kernel.errors import NotFound, PermissionDenied, ValidationFailed
from subgraphs.kernel.tenancy import access, access_versions
from subgraphs.kernel.tenancy.access import ChannelAccess, ServerAccess
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork

T = TypeVar("T")

# What a viewer must hold in a channel to see the thing at all (below it: "not found").
VIEW = Permission.VIEW_CHANNEL
READ = Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY  # a channel's messages

# `needs`: one permission (all of its bits), or a tuple of them of which any one suffices. An empty
# tuple: no permission suffices (only what `or_own` grants, in `access_message`).
Need = Permission | tuple[Permission, ...]


def holds(found: ChannelAccess | ServerAccess, needs: Need | None) -> bool:
    """Whether `found` holds `needs` (None: nothing beyond seeing it)."""
    if needs is None:
        return True
    if isinstance(needs, Permission):
        return found.has(needs)
    return any(found.has(permission) for permission in needs)


def refused(refusal: str, field: str) -> PermissionDenied:
    """The error for what the viewer sees but may not do; each check words its own refusal."""
    if not refusal:
        raise TypeError("an access check with `needs` must say why it refuses (`refusal`)")
    return PermissionDenied(refusal, field=field)


def sees(found: ChannelAccess | None, seen_with: Permission = VIEW) -> bool:
    """Whether the member holding `found` sees the channel (VIEW) or its messages (READ)."""
    return found is not None and found.server.is_member and found.has(seen_with)


def allows(found: ChannelAccess | None, needs: Need | None, *, seen_with: Permission = VIEW) -> bool:
    """Whether `check_channel` lets `found` through for `needs` (kinds aside): its rules as a yes or no."""
    return found is not None and sees(found, seen_with) and holds(found, needs)


def check_channel(
    found: ChannelAccess | None,
    *,
    seen_with: Permission = VIEW,
    needs: Need | None = None,
    refusal: str = "",
    kinds: Collection[str] | None = None,
    wrong_kind: str | None = None,
    field: str = "channelId",
) -> ChannelAccess:
    """The rules of `access_channel` on an access already computed: seen, then of the right kind, then
    holding `needs`. A wrong kind is invalid input (`wrong_kind`), or refused as `needs` is when no
    `wrong_kind` is given."""
    if found is None or not sees(found, seen_with):
        raise NotFound("No such channel.", field=field)
    if kinds is not None and found.kind not in kinds:
        if wrong_kind is not None:
            raise ValidationFailed(wrong_kind, field=field)
        raise refused(refusal, field)
    if not holds(found, needs):
        raise refused(refusal, field)
    return found


async def access_channel(
    uow: UnitOfWork,
    viewer: int | None,
    channel_id: int,
    *,
    seen_with: Permission = VIEW,
    needs: Need | None = None,
    refusal: str = "",
    kinds: Collection[str] | None = None,
    wrong_kind: str | None = None,
    field: str = "channelId",
) -> ChannelAccess:
    """The viewer's access to a channel they see (`seen_with`) and may act in (`needs`): `check_channel`."""
    found = await access.channel_access(await uow.for_entity(channel_id), channel_id, viewer)
    return check_channel(
        found,
        seen_with=seen_with,
        needs=needs,
        refusal=refusal,
        kinds=kinds,
        wrong_kind=wrong_kind,
        field=field,
    )


async def allowed_channel(
    uow: UnitOfWork, viewer: int | None, channel_id: int, *, needs: Need, seen_with: Permission = VIEW
) -> ChannelAccess | None:
    """The viewer's access to a channel if `access_channel` would let them through for `needs`, else None
    (missing, hidden and refused alike): for a caller that refuses no viewer itself (a worker, the voice
    guard) or that answers with an error of its own."""
    found = await access.channel_access(await uow.for_entity(channel_id), channel_id, viewer)
    return found if allows(found, needs, seen_with=seen_with) else None


async def access_channel_to_send(
    uow: UnitOfWork,
    viewer: int,
    channel_id: int,
    *,
    needs: Need,
    refusal: str,
    kinds: Collection[str],
    wrong_kind: str | None = None,
    field: str = "channelId",
) -> tuple[ChannelAccess, str | None]:
    """`access_channel` on the send path: one statement while the server's access version is unchanged
    (kernel/tenancy/access_versions.py). Also returns the channel's name, read by the same statement."""
    target = await access_versions.channel_for_send(await uow.for_entity(channel_id), channel_id, viewer)
    found = check_channel(
        target.access, needs=needs, refusal=refusal, kinds=kinds, wrong_kind=wrong_kind, field=field
    )
    return found, target.name


async def access_server(
    uow: UnitOfWork,
    viewer: int | None,
    server_id: int,
    *,
    needs: Need | None = None,
    refusal: str = "",
    field: str = "serverId",
) -> ServerAccess:
    """The viewer's access to a server they are a member of (else "not found": a public server's
    non-members included) and hold `needs` in."""
    found = await access.server_access(await uow.for_entity(server_id), server_id, viewer)
    return check_server(found, needs=needs, refusal=refusal, field=field)


def check_server(
    found: ServerAccess | None, *, needs: Need | None = None, refusal: str = "", field: str = "serverId"
) -> ServerAccess:
    """The rules of `access_server` on an access already computed (after a lock, say)."""
    if found is None or not found.is_member:
        raise NotFound("No such server.", field=field)
    if not holds(found, needs):
        raise refused(refusal, field)
    return found


async def or_none(check: Awaitable[T]) -> T | None:
    """A query's form of an access check: None (null in the answer) where a mutation would be refused."""
    try:
        return await check
    except (NotFound, PermissionDenied):
        return None
