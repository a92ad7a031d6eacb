"""Rules of moderation: kicking, banning and timing members out. Never commits.

The hierarchy is Discord's: a moderator acts only on members whose highest role is below their own
highest role; nobody acts on the owner; the owner is above everyone. Every change takes the tenant's lock
first and announces an access change, so live streams of the member re-check at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import ErrorCode, NotFound, PermissionDenied, ValidationFailed
from subgraphs.kernel.events.catalogue import access_changed, topic_for_server, topic_for_user
from subgraphs.kernel.tenancy import access, audit
from subgraphs.kernel.tenancy.access import ServerAccess
from subgraphs.kernel.tenancy.access_checks import check_server
from subgraphs.kernel.tenancy.audit import AuditAction
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.validation import clean_text
from subgraphs.servers import membership, repository
from subgraphs.servers.events import MemberBanned, MemberKicked, MemberTimedOut, MemberUnbanned
from subgraphs.servers.models import BanRow, ServerRow

MAX_REASON = 512
MAX_TIMEOUT = timedelta(days=28)  # Discord's limit


@dataclass(frozen=True)
class TimeoutEnd:
    """Until when a member is timed out; None clears it."""

    until: datetime | None


def check_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    return clean_text(reason, "reason", min_len=0, max_len=MAX_REASON, multiline=True) or None


def check_timeout(until: datetime | None, seconds: int | None, now: datetime) -> TimeoutEnd:
    """Either `until` or `seconds` (not both); neither, or 0 seconds, clears the timeout."""
    if until is not None and seconds is not None:
        raise ValidationFailed("Give either until or seconds, not both.", field="until")
    if seconds is not None:
        if not 0 <= seconds <= MAX_TIMEOUT.total_seconds():
            raise ValidationFailed(
                f"seconds must be between 0 (clear) and {int(MAX_TIMEOUT.total_seconds())} (28 days).",
                field="seconds",
            )
        return TimeoutEnd(now + timedelta(seconds=seconds) if seconds else None)
    if until is None:
        return TimeoutEnd(None)
    moment = until if until.tzinfo is not None else until.replace(tzinfo=UTC)
    if moment <= now or moment - now > MAX_TIMEOUT:
        raise ValidationFailed("until must be in the future and at most 28 days away.", field="until")
    return TimeoutEnd(moment.astimezone(UTC))


@dataclass(frozen=True)
class Moderator:
    server: ServerRow
    access: ServerAccess
    rank: int  # members whose highest role is at or above this are out of reach (owner: above all)

    async def check_can_act_on(self, session: AsyncSession, user_id: int, *, verb: str) -> None:
        if user_id == self.access.user_id:
            raise ValidationFailed(f"You cannot {verb} yourself.", field="userId")
        if user_id == self.server.owner_id:
            raise PermissionDenied(
                f"Nobody can {verb} the owner.", code=ErrorCode.ROLE_HIERARCHY, field="userId"
            )
        if await repository.highest_role_position(session, self.server.id, user_id) >= self.rank:
            raise PermissionDenied(
                "Their highest role is not below yours.", code=ErrorCode.ROLE_HIERARCHY, field="userId"
            )


async def _moderator(
    session: AsyncSession, principal: Principal, server_id: int, permission: Permission, name: str
) -> Moderator:
    await access.lock_tenant(session, server_id)
    server = await repository.server_by_id(session, server_id)
    found = await access.server_access(session, server_id, principal.user_id)
    if server is None or server.kind != "SERVER":  # a conversation has no moderators: as if missing
        raise NotFound("No such server.", field="serverId")
    found = check_server(found, needs=permission, refusal=f"You need the {name} permission.")
    rank = (
        1 << 62
        if found.is_owner
        else await repository.highest_role_position(session, server_id, principal.user_id)
    )
    return Moderator(server, found, rank)


async def _require_member(session: AsyncSession, server_id: int, user_id: int) -> None:
    if not await repository.is_member(session, server_id, user_id):
        raise NotFound("No such member.", field="userId")


async def kick_member(
    uow: UnitOfWork, principal: Principal, server_id: int, user_id: int, reason: str | None
) -> None:
    cleaned = check_reason(reason)
    session = await uow.for_entity(server_id)
    moderator = await _moderator(session, principal, server_id, Permission.KICK_MEMBERS, "Kick Members")
    await _require_member(session, server_id, user_id)
    await moderator.check_can_act_on(session, user_id, verb="kick")
    await membership.withdraw(uow, server_id, user_id)  # their member_roles go with them
    await audit.record(
        uow, server_id, principal.user_id, AuditAction.MEMBER_KICK, ("MEMBER", user_id), reason=cleaned
    )
    event = MemberKicked(server_id, user_id, principal.user_id, cleaned)
    uow.emit(topic_for_server(server_id), event)
    uow.emit(topic_for_user(user_id), event)
    access_changed(uow.emit, server_id)


async def ban_member(
    uow: UnitOfWork, principal: Principal, server_id: int, user_id: int, reason: str | None
) -> BanRow:
    """Bans a member (removing them) or someone who is not one (so they cannot join). Banning again
    replaces the reason."""
    cleaned = check_reason(reason)
    session = await uow.for_entity(server_id)
    moderator = await _moderator(session, principal, server_id, Permission.BAN_MEMBERS, "Ban Members")
    await moderator.check_can_act_on(session, user_id, verb="ban")
    await membership.withdraw(uow, server_id, user_id)
    ban = await repository.ban_of(session, server_id, user_id)
    if ban is None:
        ban = BanRow(
            server_id=server_id,
            user_id=user_id,
            reason=cleaned,
            banned_by=principal.user_id,
            created_at=datetime.now(UTC),
        )
        repository.add_ban(session, ban)
    else:
        ban.reason, ban.banned_by = cleaned, principal.user_id
    await session.flush()
    await audit.record(
        uow, server_id, principal.user_id, AuditAction.MEMBER_BAN, ("MEMBER", user_id), reason=cleaned
    )
    event = MemberBanned(server_id, user_id, principal.user_id, cleaned)
    uow.emit(topic_for_server(server_id), event)
    uow.emit(topic_for_user(user_id), event)
    access_changed(uow.emit, server_id)
    return ban


async def unban_member(uow: UnitOfWork, principal: Principal, server_id: int, user_id: int) -> None:
    session = await uow.for_entity(server_id)
    await _moderator(session, principal, server_id, Permission.BAN_MEMBERS, "Ban Members")
    ban = await repository.ban_of(session, server_id, user_id)
    if ban is None:
        raise NotFound("That user is not banned.", field="userId")
    await repository.delete_ban(session, ban)
    await session.flush()
    await audit.record(
        uow,
        server_id,
        principal.user_id,
        AuditAction.MEMBER_UNBAN,
        ("MEMBER", user_id),
        before={"reason": ban.reason},
    )
    uow.emit(topic_for_server(server_id), MemberUnbanned(server_id, user_id, principal.user_id))
    access_changed(uow.emit, server_id)


async def list_bans(uow: UnitOfWork, user_id: int | None, server_id: int) -> list[BanRow] | None:
    """A server's bans, newest first, for members with Ban Members; None for anyone else."""
    session = await uow.for_entity(server_id)
    if await access.member_holding(session, server_id, user_id, Permission.BAN_MEMBERS) is None:
        return None
    return await repository.bans_of_server(session, server_id)


async def timeout_member(
    uow: UnitOfWork, principal: Principal, server_id: int, user_id: int, ends: TimeoutEnd
) -> datetime | None:
    session = await uow.for_entity(server_id)
    moderator = await _moderator(
        session, principal, server_id, Permission.MODERATE_MEMBERS, "Moderate Members"
    )
    await _require_member(session, server_id, user_id)
    await moderator.check_can_act_on(session, user_id, verb="time out")
    if ends.until is not None:
        target = await access.server_access(session, server_id, user_id)
        if target is not None and target.has(Permission.ADMINISTRATOR):
            raise PermissionDenied(
                "Administrators cannot be timed out.", code=ErrorCode.ROLE_HIERARCHY, field="userId"
            )
    await repository.set_timeout(session, server_id, user_id, ends.until)
    await session.flush()
    await audit.record(
        uow,
        server_id,
        principal.user_id,
        AuditAction.MEMBER_TIMEOUT,
        ("MEMBER", user_id),
        after={"until": ends.until},
    )
    event = MemberTimedOut(server_id, user_id, principal.user_id, ends.until)
    uow.emit(topic_for_server(server_id), event)
    uow.emit(topic_for_user(user_id), event)
    access_changed(uow.emit, server_id)
    return ends.until
