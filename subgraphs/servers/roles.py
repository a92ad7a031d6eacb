"""Rules of roles: who may create, edit, delete and assign them. Never commits.

The hierarchy is Discord's: a member with Manage Roles acts only on roles below their own highest role,
and cannot grant permissions they do not have themselves; the owner is above every role.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from db.ids import new_id
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import ErrorCode, NotFound, PermissionDenied, ValidationFailed
from subgraphs.kernel.events.catalogue import access_changed, topic_for_server
from subgraphs.kernel.tenancy import access, audit
from subgraphs.kernel.tenancy.access import ServerAccess
from subgraphs.kernel.tenancy.access_checks import check_server
from subgraphs.kernel.tenancy.audit import AuditAction
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.validation import clean_text
from subgraphs.servers import repository
from subgraphs.servers.events import RolesChanged
from subgraphs.servers.models import MemberRoleRow, RoleRow

MAX_ROLES = 250


@dataclass(frozen=True)
class RoleChanges:
    name: str | None = None
    permissions: Permission | None = None
    position: int | None = None


@dataclass(frozen=True)
class Actor:
    access: ServerAccess
    rank: int  # roles at or above this position are out of reach (owner: above all)

    def check_can_manage(self, role: RoleRow) -> None:
        if role.id != role.server_id and role.position >= self.rank:
            raise PermissionDenied(
                "That role is not below your highest role.", code=ErrorCode.ROLE_HIERARCHY, field="roleId"
            )

    def check_can_grant(self, permissions: Permission) -> None:
        if permissions & ~self.access.permissions:
            raise PermissionDenied(
                "You cannot grant permissions you do not have.",
                code=ErrorCode.ROLE_HIERARCHY,
                field="permissions",
            )


async def _actor(session: AsyncSession, principal: Principal, server_id: int) -> Actor:
    # Serialise role edits per server (two admins reordering at once cannot interleave the position shifts).
    await access.lock_tenant(session, server_id)
    found = check_server(
        await access.server_access(session, server_id, principal.user_id),
        needs=Permission.MANAGE_ROLES,
        refusal="You need the Manage Roles permission.",
    )
    rank = (
        1 << 62
        if found.is_owner
        else await repository.highest_role_position(session, server_id, principal.user_id)
    )
    return Actor(found, rank)


def snapshot(role: RoleRow) -> dict[str, object]:
    """What the audit log keeps of a role."""
    return {"name": role.name, "permissions": role.permissions, "position": role.position}


async def _role(session: AsyncSession, role_id: int, *, fresh: bool = False) -> RoleRow:
    role = await repository.role_by_id(session, role_id, fresh=fresh)
    if role is None:
        raise NotFound("No such role.", field="roleId")
    return role


async def _locked_role(session: AsyncSession, principal: Principal, role_id: int) -> tuple[RoleRow, Actor]:
    """The role, read again once its server is locked: a concurrent edit may have moved or deleted it since
    it was first read (to learn its server), and positions computed from a stale copy corrupt the order."""
    role = await _role(session, role_id)
    actor = await _actor(session, principal, role.server_id)
    return await _role(session, role_id, fresh=True), actor


async def create_role(
    uow: UnitOfWork, principal: Principal, server_id: int, name: str, permissions: Permission
) -> RoleRow:
    role_name = clean_text(name, "name", min_len=1, max_len=100)
    session = await uow.for_entity(server_id)
    actor = await _actor(session, principal, server_id)
    actor.check_can_grant(permissions)
    if await repository.count_roles(session, server_id) >= MAX_ROLES:
        raise ValidationFailed(f"A server has at most {MAX_ROLES} roles.", code=ErrorCode.LIMIT_REACHED)
    # New roles go just above @everyone, below everything else (so even a moderator may create one).
    await repository.shift_positions_from(session, server_id, 1)
    role = RoleRow(
        id=new_id(await uow.shard_for(server_id)),
        server_id=server_id,
        name=role_name,
        permissions=int(permissions),
        position=1,
        created_at=datetime.now(UTC),
    )
    repository.add_role(session, role)
    await session.flush()
    await audit.record(
        uow, server_id, principal.user_id, AuditAction.ROLE_CREATE, ("ROLE", role.id), after=snapshot(role)
    )
    uow.emit(topic_for_server(server_id), RolesChanged(server_id, role.id, "CREATED", None))
    return role


async def update_role(uow: UnitOfWork, principal: Principal, role_id: int, changes: RoleChanges) -> RoleRow:
    session = await uow.for_entity(role_id)
    role, actor = await _locked_role(session, principal, role_id)
    actor.check_can_manage(role)
    before = snapshot(role)
    if changes.name is not None:
        if role.id == role.server_id:
            raise ValidationFailed("@everyone cannot be renamed.", field="name")
        role.name = clean_text(changes.name, "name", min_len=1, max_len=100)
    if changes.permissions is not None:
        actor.check_can_grant(changes.permissions & ~Permission(role.permissions))
        role.permissions = int(changes.permissions)
    if changes.position is not None and changes.position != role.position:
        if role.id == role.server_id:
            raise ValidationFailed("@everyone is always the lowest role.", field="position")
        highest = await repository.count_roles(session, role.server_id) - 1
        if not 1 <= changes.position <= highest or changes.position >= actor.rank:
            raise ValidationFailed(
                f"position must be between 1 and {min(highest, actor.rank - 1)}.",
                code=ErrorCode.ROLE_HIERARCHY if changes.position >= actor.rank else ErrorCode.INVALID_INPUT,
                field="position",
            )
        await repository.close_gap_at(session, role.server_id, role.position)
        await repository.shift_positions_from(session, role.server_id, changes.position)
        role.position = changes.position
    await session.flush()
    await audit.record(
        uow,
        role.server_id,
        principal.user_id,
        AuditAction.ROLE_UPDATE,
        ("ROLE", role.id),
        before=before,
        after=snapshot(role),
    )
    uow.emit(topic_for_server(role.server_id), RolesChanged(role.server_id, role.id, "UPDATED", None))
    access_changed(uow.emit, role.server_id)
    return role


async def delete_role(uow: UnitOfWork, principal: Principal, role_id: int) -> RoleRow:
    session = await uow.for_entity(role_id)
    if role_id == (await _role(session, role_id)).server_id:
        raise ValidationFailed("@everyone cannot be deleted.", field="roleId")
    role, actor = await _locked_role(session, principal, role_id)
    actor.check_can_manage(role)
    await repository.delete_role(session, role)
    await session.flush()
    await repository.close_gap_at(session, role.server_id, role.position)
    await audit.record(
        uow,
        role.server_id,
        principal.user_id,
        AuditAction.ROLE_DELETE,
        ("ROLE", role.id),
        before=snapshot(role),
    )
    uow.emit(topic_for_server(role.server_id), RolesChanged(role.server_id, role.id, "DELETED", None))
    access_changed(uow.emit, role.server_id)
    return role


async def set_member_role(
    uow: UnitOfWork, principal: Principal, role_id: int, user_id: int, *, assigned: bool
) -> RoleRow:
    session = await uow.for_entity(role_id)
    if role_id == (await _role(session, role_id)).server_id:
        raise ValidationFailed("Every member has @everyone.", field="roleId")
    role, actor = await _locked_role(session, principal, role_id)
    actor.check_can_manage(role)
    if not await repository.is_member(session, role.server_id, user_id):
        raise NotFound("No such member.", field="userId")
    has_it = await repository.member_has_role(session, role.server_id, user_id, role.id)
    if assigned and not has_it:
        repository.add_member_role(
            session, MemberRoleRow(server_id=role.server_id, user_id=user_id, role_id=role.id)
        )
    elif not assigned and has_it:
        await repository.remove_member_role(session, role.server_id, user_id, role.id)
    else:
        return role  # already so: nothing changes, nothing is announced
    await session.flush()
    await audit.record(
        uow,
        role.server_id,
        principal.user_id,
        AuditAction.MEMBER_ROLE_ADD if assigned else AuditAction.MEMBER_ROLE_REMOVE,
        ("MEMBER", user_id),
        context={"roleId": role.id, "roleName": role.name},
    )
    change = "ASSIGNED" if assigned else "UNASSIGNED"
    uow.emit(topic_for_server(role.server_id), RolesChanged(role.server_id, role.id, change, user_id))
    access_changed(uow.emit, role.server_id)
    return role
