"""Rules of leaving a server and handing it over. Never commits.

Both take the server row's lock first (`repository.lock_server`), so a transfer to a member and that
member leaving cannot interleave into a server owned by a non-member.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError

from db.tenants import index_membership, unindex_membership
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import Conflict, ErrorCode, NotFound, PermissionDenied, ValidationFailed
from subgraphs.kernel.events.catalogue import access_changed, topic_for_server
from subgraphs.kernel.tenancy import access, audit
from subgraphs.kernel.tenancy.audit import AuditAction
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.servers import repository
from subgraphs.servers.administration import joined_server
from subgraphs.servers.events import MemberLeft, OwnershipTransferred
from subgraphs.servers.models import MemberRow, ServerRow


async def enrol(uow: UnitOfWork, server_id: int, user_id: int, now: datetime) -> MemberRow:
    """A new member: the row in the tenant's shard and its entry in the directory's index."""
    member = MemberRow(server_id=server_id, user_id=user_id, joined_at=now)
    repository.add_member(await uow.for_entity(server_id), member)
    index_membership(uow.directory(), user_id, server_id, now)
    return member


async def admit(uow: UnitOfWork, server_id: int, user_id: int, now: datetime, field: str) -> None:
    """Make `user_id` a member (through an invite, an invitation or joining): refused for a member
    (ALREADY_MEMBER) or a banned user (BANNED). Under the tenant's lock, so a ban cannot slip in between;
    the member row is flushed at once, so a concurrent admission of the same user fails here."""
    session = await uow.for_entity(server_id)
    if await repository.is_member(session, server_id, user_id):
        raise Conflict("You are already a member.", code=ErrorCode.ALREADY_MEMBER, field=field)
    await access.lock_tenant(session, server_id)
    if await repository.is_banned(session, server_id, user_id):
        raise PermissionDenied("You are banned from this server.", code=ErrorCode.BANNED, field=field)
    await enrol(uow, server_id, user_id, now)
    try:
        await session.flush()
    except IntegrityError as error:
        raise Conflict("You are already a member.", code=ErrorCode.ALREADY_MEMBER, field=field) from error


async def withdraw(uow: UnitOfWork, server_id: int, user_id: int) -> None:
    """The member row (their roles go with it) and the directory's entry; a no-op for a non-member."""
    await repository.remove_member(await uow.for_entity(server_id), server_id, user_id)
    await unindex_membership(uow.directory(), user_id, server_id)


async def leave_server(uow: UnitOfWork, principal: Principal, server_id: int) -> None:
    server = await joined_server(uow, principal, server_id)
    if server.owner_id == principal.user_id:
        raise PermissionDenied(
            "The owner cannot leave: transfer ownership to another member first.", field="serverId"
        )
    await withdraw(uow, server_id, principal.user_id)
    uow.emit(topic_for_server(server_id), MemberLeft(server_id, principal.user_id))
    access_changed(uow.emit, server_id)


async def transfer_ownership(
    uow: UnitOfWork, principal: Principal, server_id: int, new_owner_id: int
) -> ServerRow:
    server = await joined_server(uow, principal, server_id)
    session = await uow.for_entity(server_id)
    if server.owner_id != principal.user_id:
        raise PermissionDenied("Only the owner can transfer ownership.", field="serverId")
    if new_owner_id == principal.user_id:
        raise ValidationFailed("You already own this server.", field="userId")
    if not await repository.is_member(session, server_id, new_owner_id):
        raise NotFound("No such member.", field="userId")
    previous_owner_id, server.owner_id = server.owner_id, new_owner_id
    await session.flush()
    await audit.record(
        uow,
        server_id,
        principal.user_id,
        AuditAction.OWNERSHIP_TRANSFER,
        ("SERVER", server_id),
        before={"ownerId": previous_owner_id},
        after={"ownerId": new_owner_id},
    )
    uow.emit(topic_for_server(server_id), OwnershipTransferred(server_id, principal.user_id, new_owner_id))
    access_changed(uow.emit, server_id)
    return server
