"""Private channels, the simple way: who may see a channel, written as VIEW_CHANNEL overwrites. Never
commits.

Private: @everyone (the role whose id is the server's) is denied VIEW_CHANNEL, and exactly the given roles
and members are allowed it (a VIEW_CHANNEL allow that others held is taken back; their other bits stay).
Public: the @everyone deny goes. Administrators and the owner see every channel regardless. The same
rules as raw overwrites apply (Manage Roles in the channel; a synced channel gets its own copy first).
"""

from __future__ import annotations

from dataclasses import dataclass

from subgraphs.channels import overwrites, repository
from subgraphs.channels.events import ChannelPermissionsChanged
from subgraphs.channels.models import ChannelRow
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import ErrorCode, ValidationFailed
from subgraphs.kernel.events.catalogue import topic_for_server
from subgraphs.kernel.tenancy import access
from subgraphs.kernel.tenancy.audit import AuditAction
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork

VIEW = Permission.VIEW_CHANNEL
MAX_ROLES = 250  # a server's role limit
MAX_MEMBERS = 100

Target = tuple[str, int]  # (ROLE | MEMBER, id)


@dataclass(frozen=True)
class Visibility:
    channel_id: int
    private: bool
    role_ids: tuple[int, ...] = ()
    member_ids: tuple[int, ...] = ()


def _check_lists(change: Visibility, everyone: int) -> None:
    if not change.private and (change.role_ids or change.member_ids):
        raise ValidationFailed("roleIds and memberIds apply to private channels only.", field="roleIds")
    if everyone in change.role_ids:
        raise ValidationFailed("@everyone cannot be given access to a private channel.", field="roleIds")
    if len(set(change.role_ids)) > MAX_ROLES:
        raise ValidationFailed(f"At most {MAX_ROLES} roles.", code=ErrorCode.TOO_LONG, field="roleIds")
    if len(set(change.member_ids)) > MAX_MEMBERS:
        raise ValidationFailed(f"At most {MAX_MEMBERS} members.", code=ErrorCode.TOO_LONG, field="memberIds")


def wanted_overwrites(
    current: dict[Target, tuple[int, int]], everyone: int, change: Visibility
) -> dict[Target, tuple[int, int]]:
    """The (allow, deny) every touched target should end with, from the channel's current overwrites."""
    view = int(VIEW)
    wanted: dict[Target, tuple[int, int]] = {}

    def put(target: Target, *, allowed: bool | None, denied: bool | None) -> None:
        allow, deny = current.get(target, (0, 0))
        if allowed is not None:
            allow = allow | view if allowed else allow & ~view
        if denied is not None:
            deny = deny | view if denied else deny & ~view
        wanted[target] = (allow, deny)

    if not change.private:
        put(("ROLE", everyone), allowed=None, denied=False)
        return wanted
    put(("ROLE", everyone), allowed=False, denied=True)
    chosen = {("ROLE", r) for r in change.role_ids} | {("MEMBER", m) for m in change.member_ids}
    for target in chosen:
        put(target, allowed=True, denied=False)
    for target, (allow, _deny) in current.items():
        if target not in chosen and target != ("ROLE", everyone) and allow & view:
            put(target, allowed=False, denied=None)  # no longer chosen: the allow goes, a deny stays
    return wanted


async def set_visibility(uow: UnitOfWork, principal: Principal, change: Visibility) -> ChannelRow:
    session = await uow.for_entity(change.channel_id)
    channel, mine = await overwrites.managed_channel(session, principal, change.channel_id)
    everyone = channel.server_id
    _check_lists(change, everyone)
    for role_id in sorted(set(change.role_ids)):
        await overwrites.check_target(session, channel.server_id, "ROLE", role_id, "roleIds")
    for member_id in sorted(set(change.member_ids)):
        await overwrites.check_target(session, channel.server_id, "MEMBER", member_id, "memberIds")
    source = access.overwrites_source(channel.id, channel.parent_id, channel.permissions_synced)
    current = {
        (row.target_kind, row.target_id): (row.allow, row.deny)
        for row in await repository.overwrites_of(session, [source])
    }
    wanted = wanted_overwrites(current, everyone, change)
    if all(current.get(target, (0, 0)) == value for target, value in wanted.items()):
        return channel  # already so: nothing changes (a synced channel stays synced)
    await overwrites.unsync(session, channel)
    for (kind, target_id), (allow, deny) in sorted(wanted.items()):
        changed = await overwrites.put_overwrite(
            session, channel, mine, kind, target_id, Permission(allow), Permission(deny), keep_empty=False
        )
        if changed:
            old_allow, old_deny = current.get((kind, target_id), (0, 0))
            await overwrites.record_overwrite(
                uow,
                principal,
                channel,
                AuditAction.CHANNEL_OVERWRITE_SET,
                (kind, target_id),
                {"allow": old_allow, "deny": old_deny},
                {"allow": allow, "deny": deny},
            )
    await session.flush()
    uow.emit(topic_for_server(channel.server_id), ChannelPermissionsChanged(channel.id, channel.server_id))
    overwrites.announce_access_change(uow, channel)
    return channel
