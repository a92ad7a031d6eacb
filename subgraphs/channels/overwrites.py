"""Rules of channel permission overwrites. Never commits.

Setting or removing an overwrite needs Manage Roles in that channel, and you cannot change permissions you
do not have yourself (bits an overwrite already holds may stay). A channel synced with its folder gets a
copy of the folder's overwrites first, then stops being synced (Discord's behaviour), so the change
affects only this channel. Writes hold the server's channel layout lock, like every channel change.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.channels import repository
from subgraphs.channels.events import ChannelPermissionsChanged
from subgraphs.channels.models import ChannelRow, OverwriteRow
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import ErrorCode, NotFound, PermissionDenied, ValidationFailed
from subgraphs.kernel.events.catalogue import access_changed, topic_for_server
from subgraphs.kernel.tenancy import access, audit
from subgraphs.kernel.tenancy.access_checks import check_channel
from subgraphs.kernel.tenancy.audit import AuditAction
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork

TARGET_KINDS = ("ROLE", "MEMBER")


@dataclass(frozen=True)
class OverwriteSpec:
    channel_id: int
    target_kind: str
    target_id: int
    allow: Permission
    deny: Permission


async def managed_channel(
    session: AsyncSession, principal: Principal, channel_id: int
) -> tuple[ChannelRow, Permission]:
    """Lock the channel's server, then the channel and the principal's permissions in it if they have
    Manage Roles there ("not found" when they cannot see it)."""
    server_id = await repository.server_of_channel(session, channel_id)
    if server_id is None:
        raise NotFound("No such channel.", field="channelId")
    await access.lock_tenant(session, server_id)
    found = check_channel(
        await access.channel_access(session, channel_id, principal.user_id),
        needs=Permission.MANAGE_ROLES,
        refusal="You need the Manage Roles permission in this channel.",
    )
    channel = await repository.channel_by_id(session, channel_id)
    if channel is None:  # seen by the access just computed, under the tenant's lock: not reached
        raise NotFound("No such channel.", field="channelId")
    return channel, found.permissions


async def check_target(
    session: AsyncSession, server_id: int, kind: str, target_id: int, field: str = "targetId"
) -> None:
    if kind not in TARGET_KINDS:
        raise ValidationFailed("targetKind must be ROLE or MEMBER.", field="targetKind")
    if kind == "ROLE" and await access.role_server_id(session, target_id) != server_id:
        raise NotFound("No such role in this server.", field=field)
    if kind == "MEMBER" and server_id not in await access.member_server_ids(session, [server_id], target_id):
        raise NotFound("No such member in this server.", field=field)


async def unsync(session: AsyncSession, channel: ChannelRow) -> None:
    """Give a synced channel its own copy of the folder's overwrites before it diverges (or leaves it)."""
    if channel.parent_id is None or not channel.permissions_synced:
        return
    for inherited in await repository.overwrites_of(session, [channel.parent_id]):
        repository.add_overwrite(
            session,
            OverwriteRow(
                channel_id=channel.id,
                target_kind=inherited.target_kind,
                target_id=inherited.target_id,
                allow=inherited.allow,
                deny=inherited.deny,
            ),
        )
    channel.permissions_synced = False
    await session.flush()


async def put_overwrite(
    session: AsyncSession,
    channel: ChannelRow,
    mine: Permission,
    kind: str,
    target_id: int,
    allow: Permission,
    deny: Permission,
    *,
    keep_empty: bool = True,
) -> bool:
    """Write one of an unsynced channel's overwrites; whether anything changed. `mine`: the actor's
    permissions in the channel, outside which nothing may change. `keep_empty=False` drops a 0/0 row."""
    row = await repository.overwrite(session, channel.id, kind, target_id)
    old_allow, old_deny = (row.allow, row.deny) if row is not None else (0, 0)
    if ((int(allow) ^ old_allow) | (int(deny) ^ old_deny)) & ~int(mine):
        raise PermissionDenied(
            "You cannot allow or deny permissions you do not have.",
            code=ErrorCode.ROLE_HIERARCHY,
            field="allow",
        )
    if not allow and not deny and not keep_empty:
        if row is None:
            return False
        await repository.delete_overwrite(session, row)
        return True
    if row is not None and (row.allow, row.deny) == (int(allow), int(deny)):
        return False
    if row is None:
        row = OverwriteRow(channel_id=channel.id, target_kind=kind, target_id=target_id, allow=0, deny=0)
        repository.add_overwrite(session, row)
    row.allow, row.deny = int(allow), int(deny)
    return True


async def set_overwrite(uow: UnitOfWork, principal: Principal, spec: OverwriteSpec) -> ChannelRow:
    if spec.allow & spec.deny:
        raise ValidationFailed(
            "A permission cannot be both allowed and denied.",
            code=ErrorCode.INVALID_PERMISSIONS,
            field="deny",
        )
    session = await uow.for_entity(spec.channel_id)
    channel, mine = await managed_channel(session, principal, spec.channel_id)
    await check_target(session, channel.server_id, spec.target_kind, spec.target_id)
    await unsync(session, channel)
    row = await repository.overwrite(session, channel.id, spec.target_kind, spec.target_id)
    before = {"allow": row.allow, "deny": row.deny} if row is not None else None
    await put_overwrite(session, channel, mine, spec.target_kind, spec.target_id, spec.allow, spec.deny)
    await session.flush()
    await record_overwrite(
        uow,
        principal,
        channel,
        AuditAction.CHANNEL_OVERWRITE_SET,
        (spec.target_kind, spec.target_id),
        before,
        {"allow": int(spec.allow), "deny": int(spec.deny)},
    )
    uow.emit(topic_for_server(channel.server_id), ChannelPermissionsChanged(channel.id, channel.server_id))
    announce_access_change(uow, channel)
    return channel


async def remove_overwrite(
    uow: UnitOfWork, principal: Principal, channel_id: int, target_kind: str, target_id: int
) -> ChannelRow:
    session = await uow.for_entity(channel_id)
    channel, _mine = await managed_channel(session, principal, channel_id)
    await unsync(session, channel)
    row = await repository.overwrite(session, channel.id, target_kind, target_id)
    if row is not None:
        await repository.delete_overwrite(session, row)
        await session.flush()
        await record_overwrite(
            uow,
            principal,
            channel,
            AuditAction.CHANNEL_OVERWRITE_DELETE,
            (target_kind, target_id),
            {"allow": row.allow, "deny": row.deny},
            None,
        )
        uow.emit(
            topic_for_server(channel.server_id), ChannelPermissionsChanged(channel.id, channel.server_id)
        )
        announce_access_change(uow, channel)
    return channel


async def record_overwrite(
    uow: UnitOfWork,
    principal: Principal,
    channel: ChannelRow,
    action: AuditAction,
    target: tuple[str, int],
    before: dict[str, int] | None,
    after: dict[str, int] | None,
) -> None:
    """An overwrite's audit entry: the channel is the target; whom the overwrite names is its context."""
    kind, target_id = target
    await audit.record(
        uow,
        channel.server_id,
        principal.user_id,
        action,
        ("CHANNEL", channel.id),
        before=before,
        after=after,
        context={"overwriteKind": kind, "overwriteTargetId": target_id},
    )


def announce_access_change(uow: UnitOfWork, channel: ChannelRow) -> None:
    """Live streams re-check at once: this channel's, or the whole server's for a folder (its synced
    children change with it)."""
    access_changed(uow.emit, channel.server_id, None if channel.kind == "FOLDER" else channel.id)
