"""Rules of the channels context. Never commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from db.ids import new_id, shard_of
from subgraphs.channels import repository
from subgraphs.channels.events import ChannelCreated
from subgraphs.channels.models import ChannelRow
from subgraphs.kernel import access
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import ErrorCode, NotFound, PermissionDenied, ValidationFailed
from subgraphs.kernel.events import topic_for_server
from subgraphs.kernel.permissions import Permission
from subgraphs.kernel.uow import UnitOfWork
from subgraphs.kernel.validation import clean_text

KINDS = ("TEXT", "VOICE", "FOLDER")


@dataclass(frozen=True)
class NewChannel:
    server_id: int
    name: str
    kind: str
    parent_id: int | None


async def create_channel(uow: UnitOfWork, principal: Principal, data: NewChannel) -> ChannelRow:
    name = clean_text(data.name, "name", min_len=1, max_len=100)
    if data.kind not in KINDS:
        raise ValidationFailed("Kind must be TEXT, VOICE or FOLDER.", field="kind")
    session = uow.for_entity(data.server_id)
    server = await access.server_access(session, data.server_id, principal.user_id)
    if server is None or not server.is_member:
        raise NotFound("No such server.", field="serverId")
    if not server.has(Permission.MANAGE_CHANNELS):
        raise PermissionDenied("You need the Manage Channels permission.", field="serverId")
    if data.parent_id is not None:
        await _check_parent(uow, data, session_shard=shard_of(data.server_id))
    channel = ChannelRow(
        id=new_id(shard_of(data.server_id)),  # a tenant's rows share its shard
        server_id=data.server_id,
        name=name,
        kind=data.kind,
        parent_id=data.parent_id,
        position=await repository.next_position(session, data.server_id, data.parent_id),
        created_at=datetime.now(UTC),
    )
    repository.add_channel(session, channel)
    uow.emit(
        topic_for_server(data.server_id),
        ChannelCreated(channel.id, data.server_id, name, data.kind, data.parent_id),
    )
    return channel


async def _check_parent(uow: UnitOfWork, data: NewChannel, session_shard: int) -> None:
    assert data.parent_id is not None
    if data.kind == "FOLDER":
        raise ValidationFailed("Folders cannot be nested.", code=ErrorCode.INVALID_PARENT, field="parentId")
    parent = None
    if shard_of(data.parent_id) == session_shard:
        parent = await repository.channel_by_id(uow.shard(session_shard), data.parent_id)
    if parent is None or parent.server_id != data.server_id:
        raise ValidationFailed(
            "The parent must be a folder of the same server.", code=ErrorCode.INVALID_PARENT, field="parentId"
        )
    if parent.kind != "FOLDER":
        raise ValidationFailed(
            "The parent must be a folder.", code=ErrorCode.INVALID_PARENT, field="parentId"
        )
