"""Rules of invites: who may create, list and revoke them; previewing and accepting one. Never commits.

Invite codes are global rows in the directory (DESIGN: "Global rows (... invite codes) live in the
directory"), so a code alone finds its server wherever its shard is; the membership an invite grants is
written in that server's shard. A request that accepts an invite therefore writes to both databases.
"""

from __future__ import annotations

import enum
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import (
    ErrorCode,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from subgraphs.kernel.events.catalogue import topic_for_server
from subgraphs.kernel.tenancy import access, audit
from subgraphs.kernel.tenancy.access import ServerAccess
from subgraphs.kernel.tenancy.access_checks import access_server, holds, or_none
from subgraphs.kernel.tenancy.audit import AuditAction
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.servers import membership, repository
from subgraphs.servers.events import MemberJoined
from subgraphs.servers.models import InviteRow, ServerRow

CODE_ALPHABET = string.ascii_letters + string.digits
CODE_LENGTH = 10  # 62**10 ≈ 8·10^17 codes (59 bits): not guessable at any rate the router lets through
_CODE_FORMAT = re.compile(r"[A-Za-z0-9]{8,32}")  # what a code may look like (ours are 10 long)
MAX_AGE_SECONDS = 7 * 24 * 3600
MAX_USES = 100
MAX_USABLE_INVITES = 1000  # per server, counting only the ones that can still be accepted (Discord's)


class InviteState(enum.Enum):
    USABLE = "USABLE"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    EXHAUSTED = "EXHAUSTED"


@dataclass(frozen=True)
class NewInvite:
    server_id: int
    max_age_seconds: int | None  # None or 0: never expires
    max_uses: int  # 0: unlimited


@dataclass(frozen=True)
class Limits:
    lifetime: timedelta | None
    max_uses: int


@dataclass(frozen=True)
class InvitePreview:
    """What anyone holding the code may see. A dead invite (revoked, expired, used up) says nothing
    about its server: a code that was revoked because it leaked should not go on naming the server."""

    code: str
    valid: bool
    expires_at: datetime | None
    server_name: str | None
    member_count: int | None


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def is_code(raw: str) -> bool:
    return _CODE_FORMAT.fullmatch(raw) is not None


def check_code(raw: str) -> str:
    code = raw.strip()
    if not is_code(code):
        raise ValidationFailed("That is not an invite code.", code=ErrorCode.INVALID_FORMAT, field="code")
    return code


def check_limits(max_age_seconds: int | None, max_uses: int) -> Limits:
    if not 0 <= max_uses <= MAX_USES:
        raise ValidationFailed(f"maxUses must be between 0 (unlimited) and {MAX_USES}.", field="maxUses")
    if max_age_seconds is not None and not 0 <= max_age_seconds <= MAX_AGE_SECONDS:
        raise ValidationFailed(
            f"maxAgeSeconds must be between 1 and {MAX_AGE_SECONDS} (7 days), or 0 or null for never.",
            field="maxAgeSeconds",
        )
    lifetime = timedelta(seconds=max_age_seconds) if max_age_seconds else None
    return Limits(lifetime, max_uses)


def invite_state(invite: InviteRow, now: datetime) -> InviteState:
    if invite.revoked_at is not None:
        return InviteState.REVOKED
    if invite.expires_at is not None and invite.expires_at <= now:
        return InviteState.EXPIRED
    if invite.max_uses and invite.uses >= invite.max_uses:
        return InviteState.EXHAUSTED
    return InviteState.USABLE


def check_usable(invite: InviteRow, now: datetime) -> None:
    state = invite_state(invite, now)
    if state is InviteState.REVOKED:
        raise NotFound("This invite was revoked.", field="code")
    if state is InviteState.EXPIRED:
        raise NotFound("This invite has expired.", field="code")
    if state is InviteState.EXHAUSTED:
        raise ValidationFailed(
            "This invite has been used as many times as it allows.",
            code=ErrorCode.LIMIT_REACHED,
            field="code",
        )


def may_create_invites(visibility: str, permissions: Permission, granted_by_roles: Permission) -> bool:
    """Who may create invites to a server, given the member's server-wide `permissions` and the union of
    the permissions of their roles other than @everyone (`granted_by_roles`).

    - Members with Manage Server always may (so do the owner and administrators: they hold every bit).
    - PUBLIC server: any member holding Create Invite. @everyone has it by default, so any member may,
      until a manager takes it from @everyone (or from a member through their roles).
    - PRIVATE server: Create Invite counts only when a role other than @everyone grants it. @everyone
      carries Create Invite by default (DEFAULT_MEMBER_PERMISSIONS, and every server's @everyone since
      migration s0002), and the issue asks that on a private server only admins may invite by default; so
      on a private server the bit is honoured only when someone deliberately gave it through a role.
    Channel overwrites play no part: invites are to the server.
    """
    if Permission.MANAGE_SERVER in permissions:
        return True
    if visibility == "PUBLIC":
        return Permission.CREATE_INVITE in permissions
    return Permission.CREATE_INVITE in granted_by_roles


async def _member_access(session: AsyncSession, server_id: int, user_id: int) -> ServerAccess:
    """The caller's access to a server (not a DM) they are a member of; the same "not found" for a
    private server they are not in as for no server at all."""
    # Not `check_server`: an outsider sees a public server, so is refused (FORBIDDEN), not "not found".
    server = await repository.server_by_id(session, server_id)
    found = await access.server_access(session, server_id, user_id) if server is not None else None
    if server is None or found is None or server.kind != "SERVER" or not found.can_view:
        raise NotFound("No such server.", field="serverId")
    if not found.is_member:
        raise PermissionDenied("Only members can invite people to a server.", field="serverId")
    return found


async def inviter_access(session: AsyncSession, server_id: int, user_id: int) -> ServerAccess:
    """The caller's access if they may invite people to the server (by link or directly)."""
    found = await _member_access(session, server_id, user_id)
    granted = Permission(0)
    if found.visibility != "PUBLIC" and not found.has(Permission.MANAGE_SERVER):
        granted = await repository.role_permissions(session, sorted(found.role_ids - {found.server_id}))
    # Not `needs=`: on a private server Create Invite counts only from a role other than @everyone.
    if not may_create_invites(found.visibility, found.permissions, granted):
        raise PermissionDenied(
            "You may not invite people to this server"
            + (
                "."
                if found.visibility == "PUBLIC"
                else ": on a private server it takes a role that allows it."
            ),
            field="serverId",
        )
    return found


async def create_invite(uow: UnitOfWork, principal: Principal, data: NewInvite) -> InviteRow:
    limits = check_limits(data.max_age_seconds, data.max_uses)
    session = await uow.for_entity(data.server_id)
    await inviter_access(session, data.server_id, principal.user_id)
    directory = uow.directory()
    now = datetime.now(UTC)
    if await repository.count_usable_invites(directory, data.server_id, now) >= MAX_USABLE_INVITES:
        raise ValidationFailed(
            f"A server has at most {MAX_USABLE_INVITES} usable invites: revoke some first.",
            code=ErrorCode.LIMIT_REACHED,
            field="serverId",
        )
    invite = InviteRow(
        code=new_code(),  # a collision (1 in 10^17 per pair) fails on the primary key, never overwrites
        server_id=data.server_id,
        channel_id=None,
        creator_id=principal.user_id,
        created_at=now,
        expires_at=now + limits.lifetime if limits.lifetime else None,
        max_uses=limits.max_uses,
        uses=0,
        revoked_at=None,
    )
    repository.add_invite(directory, invite)
    await directory.flush()
    await audit.record(
        uow,
        data.server_id,
        principal.user_id,
        AuditAction.INVITE_CREATE,
        ("INVITE", None),
        after={"maxUses": invite.max_uses, "expiresAt": invite.expires_at},
        context={"code": invite.code},
    )
    return invite


async def list_invites(uow: UnitOfWork, user_id: int | None, server_id: int) -> list[InviteRow] | None:
    """The usable invites of a server, for members with Manage Server; None for anyone else."""
    session = await uow.for_entity(server_id)
    if await access.member_holding(session, server_id, user_id, Permission.MANAGE_SERVER) is None:
        return None
    return await repository.usable_invites(uow.directory(), server_id, datetime.now(UTC))


async def revoke_invite(uow: UnitOfWork, principal: Principal, raw_code: str) -> InviteRow:
    """The invite's creator or a member with Manage Server may revoke it; revoking twice is harmless."""
    directory = uow.directory()
    invite = await repository.invite_by_code(directory, check_code(raw_code))
    found = (
        await or_none(access_server(uow, principal.user_id, invite.server_id)) if invite is not None else None
    )
    if invite is None or found is None:  # a non-member sees no invite of the server
        raise NotFound("No such invite.", field="code")
    if invite.creator_id != principal.user_id and not holds(found, Permission.MANAGE_SERVER):
        raise PermissionDenied("Only its creator or a member with Manage Server can revoke it.", field="code")
    if invite.revoked_at is None:
        invite.revoked_at = datetime.now(UTC)
        await directory.flush()
        await audit.record(
            uow,
            invite.server_id,
            principal.user_id,
            AuditAction.INVITE_REVOKE,
            ("INVITE", None),
            context={"code": invite.code},
        )
    return invite


async def preview_invite(uow: UnitOfWork, raw_code: str) -> InvitePreview | None:
    """None for a code that does not exist (a malformed one is the caller's to refuse: `is_code`)."""
    invite = await repository.invite_by_code(uow.directory(), raw_code)
    if invite is None:
        return None
    if invite_state(invite, datetime.now(UTC)) is not InviteState.USABLE:
        return InvitePreview(invite.code, False, invite.expires_at, None, None)
    session = await uow.for_entity(invite.server_id)
    server = await repository.server_by_id(session, invite.server_id)
    if server is None:
        return None
    counts = await repository.member_counts(session, [server.id])
    return InvitePreview(invite.code, True, invite.expires_at, server.name, counts.get(server.id, 0))


async def accept_invite(uow: UnitOfWork, principal: Principal, raw_code: str) -> ServerRow:
    directory = uow.directory()
    code = check_code(raw_code)
    invite = await repository.invite_by_code(directory, code)
    if invite is None:
        raise NotFound("No such invite.", field="code")
    now = datetime.now(UTC)
    check_usable(invite, now)
    session = await uow.for_entity(invite.server_id)
    server = await repository.server_by_id(session, invite.server_id)
    if server is None or server.kind != "SERVER":
        raise NotFound("No such invite.", field="code")
    # The member row first (flushed): a concurrent accept or join by the same user fails there, before a
    # use is spent.
    await membership.admit(uow, server.id, principal.user_id, now, "code")

    # Then the use, with one conditional UPDATE (uses < max_uses, not revoked, not expired): of two
    # accepts racing for the last use, exactly one matches the row.
    if not await repository.use_invite(directory, code, now):
        fresh = await repository.invite_by_code(directory, code, fresh=True)
        if fresh is not None:
            check_usable(fresh, now)
        raise NotFound("No such invite.", field="code")

    # The unit of work commits the directory (the spent use) before the shard (the member row). If the
    # shard commit then fails (the shard's database goes away, the process dies in between), the use stays
    # spent and nobody joined: the invite has one use fewer than it should, and the user accepts again
    # while uses remain. The other order could admit a member past max_uses, which is worse; the two are
    # not one distributed transaction (docs/decisions.md).
    uow.emit(topic_for_server(server.id), MemberJoined(server.id, principal.user_id))
    return server
