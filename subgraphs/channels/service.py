"""Rules of the channels context: create, rename, move and delete channels. Never commits.

Every change to a server's channels first takes that server's layout lock (access.lock_tenant),
then reads what it decides from: two managers moving channels at once cannot interleave their position
shifts, and the 500-channel limit cannot be overshot by concurrent creations.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from db.ids import new_id
from subgraphs.channels import overwrites, positions, repository
from subgraphs.channels.events import ChannelCreated, ChannelDeleted, ChannelMoved, ChannelUpdated
from subgraphs.channels.models import ChannelRow
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import ErrorCode, NotFound, PermissionDenied, ValidationFailed
from subgraphs.kernel.events.catalogue import access_changed, topic_for_server
from subgraphs.kernel.tenancy import access, audit
from subgraphs.kernel.tenancy.access import ChannelAccess
from subgraphs.kernel.tenancy.access_checks import access_server, check_channel
from subgraphs.kernel.tenancy.audit import AuditAction
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.validation import clean_text

KINDS = ("TEXT", "VOICE", "FOLDER")
MAX_CHANNELS = 500  # per server, folders included
MAX_NAME = 100
MAX_TOPIC = 1024


@dataclass(frozen=True)
class NewChannel:
    server_id: int
    name: str
    kind: str
    parent_id: int | None


@dataclass(frozen=True)
class ChannelChanges:
    name: str | None = None  # None: unchanged
    topic: str | None = None  # None: unchanged; empty: cleared


@dataclass(frozen=True)
class DeletedChannels:
    channel: ChannelRow
    children: list[ChannelRow]  # a folder's channels, deleted with it


async def _record(
    uow: UnitOfWork,
    principal: Principal,
    channel: ChannelRow,
    action: AuditAction,
    *,
    before: dict[str, object] | None = None,
    after: dict[str, object] | None = None,
) -> None:
    await audit.record(
        uow, channel.server_id, principal.user_id, action, ("CHANNEL", channel.id), before=before, after=after
    )


# --- checks -------------------------------------------------------------------------------------------


async def managed_channel(
    session: AsyncSession, principal: Principal, channel_id: int, field: str
) -> ChannelRow:
    """Lock the channel's server, then the channel if the principal may manage it. A channel they cannot
    see is "not found", like a missing one."""
    server_id = await repository.server_of_channel(session, channel_id)
    if server_id is None:
        raise NotFound("No such channel.", field=field)
    await access.lock_tenant(session, server_id)
    check_channel(
        await access.channel_access(session, channel_id, principal.user_id),
        needs=Permission.MANAGE_CHANNELS,
        refusal="You need the Manage Channels permission in this channel.",
        field=field,
    )
    channel = await repository.channel_by_id(session, channel_id)
    if channel is None:  # seen by the access just computed, under the tenant's lock: not reached
        raise NotFound("No such channel.", field=field)
    return channel


async def _folder(session: AsyncSession, server_id: int, folder_id: int, user_id: int) -> ChannelAccess:
    """A folder of this server (in the server's shard) that the user can see, or INVALID_PARENT. A channel
    they cannot see gets the answer of a missing one, whatever its kind (its kind would tell it exists)."""
    folder = await repository.channel_by_id(session, folder_id)
    found = await access.channel_access(session, folder_id, user_id) if folder is not None else None
    if folder is None or folder.server_id != server_id or found is None or not found.can_view:
        raise ValidationFailed(
            "The parent must be a folder of the same server.", code=ErrorCode.INVALID_PARENT, field="parentId"
        )
    if folder.kind != "FOLDER":
        raise ValidationFailed(
            "The parent must be a folder.", code=ErrorCode.INVALID_PARENT, field="parentId"
        )
    return found


def _check_can_nest(kind: str) -> None:
    if kind == "FOLDER":
        raise ValidationFailed("Folders cannot be nested.", code=ErrorCode.INVALID_PARENT, field="parentId")


def _clean_name(name: str) -> str:
    return clean_text(name, "name", min_len=1, max_len=MAX_NAME)


# --- create -------------------------------------------------------------------------------------------


async def create_channel(uow: UnitOfWork, principal: Principal, data: NewChannel) -> ChannelRow:
    name = _clean_name(data.name)
    if data.kind not in KINDS:
        raise ValidationFailed("Kind must be TEXT, VOICE or FOLDER.", field="kind")
    await access_server(
        uow,
        principal.user_id,
        data.server_id,
        needs=Permission.MANAGE_CHANNELS,
        refusal="You need the Manage Channels permission.",
    )
    session = await uow.for_entity(data.server_id)
    await access.lock_tenant(session, data.server_id)
    if await repository.count_channels(session, data.server_id) >= MAX_CHANNELS:
        raise ValidationFailed(
            f"A server has at most {MAX_CHANNELS} channels.", code=ErrorCode.LIMIT_REACHED, field="serverId"
        )
    if data.parent_id is not None:
        _check_can_nest(data.kind)
        await _managed_folder(session, principal, data.server_id, data.parent_id)
    channel = ChannelRow(
        id=new_id(await uow.shard_for(data.server_id)),  # a tenant's rows share its shard
        server_id=data.server_id,
        name=name,
        kind=data.kind,
        parent_id=data.parent_id,
        position=await repository.next_position(session, data.server_id, data.parent_id),
        created_at=datetime.now(UTC),
    )
    repository.add_channel(session, channel)
    await _record(
        uow,
        principal,
        channel,
        AuditAction.CHANNEL_CREATE,
        after={"name": name, "kind": data.kind, "parentId": data.parent_id},
    )
    uow.emit(
        topic_for_server(data.server_id),
        ChannelCreated(channel.id, data.server_id, name, data.kind, data.parent_id),
    )
    return channel


# --- rename, topic ------------------------------------------------------------------------------------


async def update_channel(
    uow: UnitOfWork, principal: Principal, channel_id: int, changes: ChannelChanges
) -> ChannelRow:
    name = _clean_name(changes.name) if changes.name is not None else None
    topic = (
        clean_text(changes.topic, "topic", min_len=0, max_len=MAX_TOPIC, multiline=True)
        if changes.topic is not None
        else None
    )
    session = await uow.for_entity(channel_id)
    channel = await managed_channel(session, principal, channel_id, "id")
    if topic and channel.kind == "FOLDER":
        raise ValidationFailed("Folders have no topic.", field="topic")
    before = (channel.name, channel.topic)
    if name is not None:
        channel.name = name
    if topic is not None:
        channel.topic = topic or None  # an empty topic clears it
    if (channel.name, channel.topic) == before:
        return channel  # nothing changes, nothing is announced
    await session.flush()
    await _record(
        uow,
        principal,
        channel,
        AuditAction.CHANNEL_UPDATE,
        before={"name": before[0], "topic": before[1]},
        after={"name": channel.name, "topic": channel.topic},
    )
    uow.emit(
        topic_for_server(channel.server_id),
        ChannelUpdated(channel.id, channel.server_id, channel.name, channel.topic),
    )
    return channel


# --- reorder, move between folders ---------------------------------------------------------------------


async def move_channel(
    uow: UnitOfWork, principal: Principal, channel_id: int, parent_id: int | None, position: int
) -> ChannelRow:
    """Put the channel at `position` (0 = first) among the channels of `parent_id` (None: the top level).

    Into a folder: the channel follows the folder's overwrites (synced) unless it has overwrites of its
    own. Out of a folder: a synced channel keeps what applied to it, as its own copy of the folder's
    overwrites (a channel of a private folder does not turn public by moving).
    """
    if position < 0:
        raise ValidationFailed("position must be 0 or more.", field="position")
    session = await uow.for_entity(channel_id)
    channel = await managed_channel(session, principal, channel_id, "id")
    if parent_id is not None:
        _check_can_nest(channel.kind)
        if parent_id != channel.parent_id:  # a move within its folder needs no rights in the folder
            await _managed_folder(session, principal, channel.server_id, parent_id)
    rows = await repository.channels_of_servers(session, [channel.server_id])
    old_parent, old_position = channel.parent_id, channel.position
    group = positions.siblings(rows, parent_id, without=channel.id)
    if position > len(group):
        raise ValidationFailed(f"position must be between 0 and {len(group)}.", field="position")
    changed: dict[int, ChannelRow] = {}
    if parent_id != old_parent:
        if parent_id is None:
            await overwrites.unsync(session, channel)
        else:
            channel.permissions_synced = not await repository.has_overwrites(session, channel.id)
        channel.parent_id = parent_id
        changed[channel.id] = channel
        for row in positions.renumber(positions.siblings(rows, old_parent, without=channel.id)):
            changed[row.id] = row
    group.insert(position, channel)
    for row in positions.renumber(group):
        changed[row.id] = row
    if not changed:
        return channel
    await session.flush()
    await _record(
        uow,
        principal,
        channel,
        AuditAction.CHANNEL_UPDATE,
        before={"parentId": old_parent, "position": old_position},
        after={"parentId": channel.parent_id, "position": channel.position},
    )
    _announce_moves(uow, changed.values())
    return channel


async def _managed_folder(
    session: AsyncSession, principal: Principal, server_id: int, folder_id: int
) -> None:
    found = await _folder(session, server_id, folder_id, principal.user_id)
    if not found.has(Permission.MANAGE_CHANNELS):
        raise PermissionDenied("You need the Manage Channels permission in that folder.", field="parentId")


# --- delete -------------------------------------------------------------------------------------------


async def delete_channel(uow: UnitOfWork, principal: Principal, channel_id: int) -> DeletedChannels:
    """Delete a channel with its messages; a folder takes its channels with it (each of them must be
    yours to manage too: deleting what you cannot see or manage is refused)."""
    session = await uow.for_entity(channel_id)
    channel = await managed_channel(session, principal, channel_id, "id")
    rows = await repository.channels_of_servers(session, [channel.server_id])
    children = positions.siblings(rows, channel.id) if channel.kind == "FOLDER" else []
    if children:
        found = await access.channel_accesses(session, [c.id for c in children], principal.user_id)
        if not all(c.id in found and found[c.id].has(Permission.MANAGE_CHANNELS) for c in children):
            raise PermissionDenied(
                "You need the Manage Channels permission in every channel of this folder.", field="id"
            )
        # First: the folder's foreign key would only set their parent to NULL.
        await repository.delete_channels(session, [c.id for c in children])
    await repository.delete_channels(session, [channel.id])
    renumbered = positions.renumber(positions.siblings(rows, channel.parent_id, without=channel.id))
    await session.flush()
    for gone in [*children, channel]:
        await _record(
            uow,
            principal,
            gone,
            AuditAction.CHANNEL_DELETE,
            before={"name": gone.name, "kind": gone.kind, "parentId": gone.parent_id},
        )
        uow.emit(topic_for_server(gone.server_id), ChannelDeleted(gone.id, gone.server_id, gone.parent_id))
        access_changed(uow.emit, gone.server_id, gone.id)  # its live streams end now
    _announce_moves(uow, renumbered)
    return DeletedChannels(channel, children)


def _announce_moves(uow: UnitOfWork, rows: Iterable[ChannelRow]) -> None:
    for row in rows:
        uow.emit(
            topic_for_server(row.server_id),
            ChannelMoved(row.id, row.server_id, row.parent_id, row.position, row.permissions_synced),
        )
        access_changed(uow.emit, row.server_id, row.id)  # moved in or out of a folder: its overwrites
