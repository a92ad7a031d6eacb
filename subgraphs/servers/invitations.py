"""Rules of in-app invitations: a member invites a user directly; the user sees it, accepts or declines.
Never commits.

Who may invite is decided as for invite links (`invites.may_create_invites`). The invitation names its
invitee, so only they can accept it, and accepting admits them like an invite would (bans hold).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from db.ids import DIRECTORY_SHARD, new_id
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import Conflict, ErrorCode, NotFound, ValidationFailed
from subgraphs.kernel.events.catalogue import topic_for_server, topic_for_user
from subgraphs.kernel.tenancy import audit, directory_tables
from subgraphs.kernel.tenancy.audit import AuditAction
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.servers import membership, repository
from subgraphs.servers.events import InvitationReceived, MemberJoined
from subgraphs.servers.invites import inviter_access
from subgraphs.servers.models import InvitationRow, ServerRow

MAX_PENDING_PER_USER = 200  # invitations a user may have waiting; more are refused (LIMIT_REACHED)

# Whether a user exists: the one thing read from the users context's table (by id only).
_users = directory_tables.users


async def invite_user(
    uow: UnitOfWork, principal: Principal, server_id: int, invitee_id: int
) -> InvitationRow:
    if invitee_id == principal.user_id:
        raise ValidationFailed("You cannot invite yourself.", field="userId")
    session = await uow.for_entity(server_id)
    await inviter_access(session, server_id, principal.user_id)
    directory = uow.directory()
    if await directory.scalar(sa.select(_users.c.id).where(_users.c.id == invitee_id)) is None:
        raise NotFound("No such user.", field="userId")
    if await repository.is_member(session, server_id, invitee_id):
        raise Conflict("They are already a member.", code=ErrorCode.ALREADY_MEMBER, field="userId")
    pending = await directory.scalar(sa.select(sa.func.count()).where(InvitationRow.invitee_id == invitee_id))
    if (pending or 0) >= MAX_PENDING_PER_USER:
        raise ValidationFailed(
            "They have too many pending invitations.", code=ErrorCode.LIMIT_REACHED, field="userId"
        )
    invitation = InvitationRow(
        id=new_id(DIRECTORY_SHARD),
        server_id=server_id,
        inviter_id=principal.user_id,
        invitee_id=invitee_id,
        created_at=datetime.now(UTC),
    )
    directory.add(invitation)
    try:
        await directory.flush()
    except IntegrityError as error:
        raise Conflict("They already have an invitation to this server.", field="userId") from error
    await audit.record(uow, server_id, principal.user_id, AuditAction.INVITATION_SEND, ("MEMBER", invitee_id))
    uow.emit(topic_for_user(invitee_id), InvitationReceived(invitation.id, server_id, principal.user_id))
    return invitation


async def my_invitations(uow: UnitOfWork, user_id: int) -> list[InvitationRow]:
    """The user's pending invitations, newest first (those of deleted servers went with them)."""
    rows = await uow.directory().scalars(
        sa.select(InvitationRow).where(InvitationRow.invitee_id == user_id).order_by(InvitationRow.id.desc())
    )
    return list(rows)


async def _mine(uow: UnitOfWork, principal: Principal, invitation_id: int) -> InvitationRow:
    """The invitation, if it is addressed to the caller: anyone else's is "not found"."""
    invitation = await uow.directory().get(InvitationRow, invitation_id)
    if invitation is None or invitation.invitee_id != principal.user_id:
        raise NotFound("No such invitation.", field="id")
    return invitation


async def accept_invitation(uow: UnitOfWork, principal: Principal, invitation_id: int) -> ServerRow:
    invitation = await _mine(uow, principal, invitation_id)
    server_id = invitation.server_id
    await uow.directory().delete(invitation)
    await membership.admit(uow, server_id, principal.user_id, datetime.now(UTC), "id")
    uow.emit(topic_for_server(server_id), MemberJoined(server_id, principal.user_id))
    server = await repository.server_by_id(await uow.for_entity(server_id), server_id)
    if server is None:
        raise NotFound("No such invitation.", field="id")
    return server


async def decline_invitation(uow: UnitOfWork, principal: Principal, invitation_id: int) -> None:
    await uow.directory().delete(await _mine(uow, principal, invitation_id))
