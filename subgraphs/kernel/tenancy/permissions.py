"""Permission bits (Discord's positions where Discord has the permission) and field permission classes."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from subgraphs.kernel.errors import TopLevelCode


class Permission(enum.IntFlag):
    CREATE_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_SERVER = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    STREAM = 1 << 9
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    MUTE_MEMBERS = 1 << 22
    MOVE_MEMBERS = 1 << 24
    CHANGE_NICKNAME = 1 << 26
    MANAGE_NICKNAMES = 1 << 27
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    MODERATE_MEMBERS = 1 << 40
    PIN_MESSAGES = 1 << 51


ALL_PERMISSIONS = Permission(sum(p.value for p in Permission))

# What every member has until roles arrive (the communities issue makes this the @everyone role's value).
DEFAULT_MEMBER_PERMISSIONS = (
    Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.ADD_REACTIONS
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.CONNECT
    | Permission.SPEAK
    | Permission.STREAM
    | Permission.CHANGE_NICKNAME
    | Permission.CREATE_INVITE
)

# All a timed-out member keeps (Discord's behaviour): they may read, not act. Owner and administrators are
# not subject to timeouts.
TIMED_OUT_PERMISSIONS = Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY


class IsAuthenticated(BasePermission):
    message = "Sign in to do this."
    error_extensions = {"code": TopLevelCode.UNAUTHENTICATED.value}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context.principal is not None


def parse_permissions(raw: str, field: str) -> Permission:
    """Permissions travel as decimal strings (they exceed GraphQL's 32-bit Int); unknown bits are refused."""
    from subgraphs.kernel.errors import ErrorCode, ValidationFailed

    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        raise ValidationFailed(
            f"{field} must be a decimal permission bitset.", code=ErrorCode.INVALID_PERMISSIONS, field=field
        )
    value = int(text)
    if value & ~int(ALL_PERMISSIONS):
        raise ValidationFailed(
            f"{field} has unknown permission bits.", code=ErrorCode.INVALID_PERMISSIONS, field=field
        )
    return Permission(value)


# --- evaluation (Discord's order) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Overwrite:
    """A channel's allow/deny for one role or one member."""

    target_kind: str  # ROLE | MEMBER
    target_id: int
    allow: Permission
    deny: Permission


@dataclass(frozen=True)
class MemberGrant:
    """What the server grants a member before any channel overwrite."""

    is_owner: bool
    is_member: bool
    everyone: Permission  # the @everyone role's permissions
    roles: tuple[Permission, ...]  # permissions of the member's other roles
    timed_out: bool = False  # a moderator's timeout is running


def base_permissions(grant: MemberGrant) -> Permission:
    if grant.is_owner:
        return ALL_PERMISSIONS
    if not grant.is_member:
        return Permission(0)
    combined = grant.everyone
    for role in grant.roles:
        combined |= role
    if Permission.ADMINISTRATOR in combined:
        return ALL_PERMISSIONS
    return combined & TIMED_OUT_PERMISSIONS if grant.timed_out else combined


def channel_permissions(
    base: Permission,
    *,
    everyone_role_id: int,
    user_id: int,
    member_role_ids: frozenset[int],
    overwrites: tuple[Overwrite, ...],
    timed_out: bool = False,
) -> Permission:
    """Discord's order: base; the @everyone overwrite; all of the member's role overwrites together (deny,
    then allow); the member's own overwrite; a running timeout last (no overwrite lifts it).
    Administrators (and the owner) are not subject to them."""
    if base == ALL_PERMISSIONS or Permission.ADMINISTRATOR in base:
        return ALL_PERMISSIONS
    result = base
    for ow in overwrites:
        if ow.target_kind == "ROLE" and ow.target_id == everyone_role_id:
            result = (result & ~ow.deny) | ow.allow
    role_allow, role_deny = Permission(0), Permission(0)
    for ow in overwrites:
        if ow.target_kind == "ROLE" and ow.target_id != everyone_role_id and ow.target_id in member_role_ids:
            role_allow |= ow.allow
            role_deny |= ow.deny
    result = (result & ~role_deny) | role_allow
    for ow in overwrites:
        if ow.target_kind == "MEMBER" and ow.target_id == user_id:
            result = (result & ~ow.deny) | ow.allow
    if timed_out:
        result &= TIMED_OUT_PERMISSIONS
    if Permission.VIEW_CHANNEL not in result:
        return Permission(0)  # what you cannot see, you cannot act on
    return result
