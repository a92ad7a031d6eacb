from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from subgraphs.kernel.errors import ValidationFailed
from subgraphs.kernel.tenancy.access import running_timeout
from subgraphs.kernel.tenancy.permission_flags import PermissionFlag, flags_of, permissions_from_input
from subgraphs.kernel.tenancy.permissions import (
    ALL_PERMISSIONS,
    DEFAULT_MEMBER_PERMISSIONS,
    TIMED_OUT_PERMISSIONS,
    MemberGrant,
    Overwrite,
    Permission,
    base_permissions,
    channel_permissions,
)

P = Permission
EVERYONE, MODS, MUTED = 100, 200, 300
USER = 42


def grant(*roles: Permission, owner: bool = False, member: bool = True) -> MemberGrant:
    return MemberGrant(is_owner=owner, is_member=member, everyone=DEFAULT_MEMBER_PERMISSIONS, roles=roles)


def in_channel(base: Permission, roles: frozenset[int], *overwrites: Overwrite) -> Permission:
    return channel_permissions(
        base, everyone_role_id=EVERYONE, user_id=USER, member_role_ids=roles, overwrites=overwrites
    )


def test_owner_has_everything_and_outsiders_nothing() -> None:
    assert base_permissions(grant(owner=True)) == ALL_PERMISSIONS
    assert base_permissions(grant(member=False)) == P(0)


def test_roles_add_up_and_administrator_grants_all() -> None:
    assert P.MANAGE_MESSAGES in base_permissions(grant(P.MANAGE_MESSAGES))
    assert P.MANAGE_MESSAGES not in base_permissions(grant())
    assert base_permissions(grant(P.ADMINISTRATOR)) == ALL_PERMISSIONS


def test_overwrites_apply_in_discords_order() -> None:
    base = base_permissions(grant())
    hide = Overwrite("ROLE", EVERYONE, allow=P(0), deny=P.VIEW_CHANNEL)
    mods_see = Overwrite("ROLE", MODS, allow=P.VIEW_CHANNEL, deny=P(0))
    muted = Overwrite("ROLE", MUTED, allow=P(0), deny=P.SEND_MESSAGES)
    # a private channel: hidden from @everyone, visible to moderators
    assert in_channel(base, frozenset(), hide) == P(0)
    assert P.VIEW_CHANNEL in in_channel(base, frozenset({MODS}), hide, mods_see)
    # among roles, allow wins over deny (they are combined, then deny is applied before allow)
    both = in_channel(base, frozenset({MODS, MUTED}), Overwrite("ROLE", MODS, P.SEND_MESSAGES, P(0)), muted)
    assert P.SEND_MESSAGES in both
    assert P.SEND_MESSAGES not in in_channel(base, frozenset({MUTED}), muted)
    # the member's own overwrite is last and wins
    member_ban = Overwrite("MEMBER", USER, allow=P(0), deny=P.VIEW_CHANNEL)
    assert in_channel(base, frozenset({MODS}), mods_see, member_ban) == P(0)
    member_allow = Overwrite("MEMBER", USER, allow=P.VIEW_CHANNEL, deny=P(0))
    assert P.VIEW_CHANNEL in in_channel(base, frozenset(), hide, member_allow)


def test_overwrites_for_others_do_not_apply() -> None:
    base = base_permissions(grant())
    other_member = Overwrite("MEMBER", USER + 1, allow=P(0), deny=P.VIEW_CHANNEL)
    other_role = Overwrite("ROLE", MODS, allow=P(0), deny=P.VIEW_CHANNEL)
    assert in_channel(base, frozenset(), other_member, other_role) == base


def test_administrators_ignore_overwrites() -> None:
    admin = base_permissions(grant(P.ADMINISTRATOR))
    assert (
        in_channel(admin, frozenset(), Overwrite("ROLE", EVERYONE, P(0), P.VIEW_CHANNEL)) == ALL_PERMISSIONS
    )


def test_a_timeout_leaves_only_viewing_and_reading() -> None:
    timed_out = MemberGrant(
        is_owner=False,
        is_member=True,
        everyone=DEFAULT_MEMBER_PERMISSIONS,
        roles=(P.MANAGE_MESSAGES | P.KICK_MEMBERS,),
        timed_out=True,
    )
    base = base_permissions(timed_out)
    assert base == TIMED_OUT_PERMISSIONS == P.VIEW_CHANNEL | P.READ_MESSAGE_HISTORY
    # No overwrite lifts it: an allow of Send Messages on the channel still leaves the member read-only.
    allow_send = Overwrite("MEMBER", USER, P.SEND_MESSAGES, P(0))
    assert (
        channel_permissions(
            base,
            everyone_role_id=EVERYONE,
            user_id=USER,
            member_role_ids=frozenset({EVERYONE}),
            overwrites=(allow_send,),
            timed_out=True,
        )
        == P.VIEW_CHANNEL | P.READ_MESSAGE_HISTORY
    )
    # A channel the member cannot see stays invisible.
    hidden = Overwrite("ROLE", EVERYONE, P(0), P.VIEW_CHANNEL)
    assert channel_permissions(
        base,
        everyone_role_id=EVERYONE,
        user_id=USER,
        member_role_ids=frozenset({EVERYONE}),
        overwrites=(hidden,),
        timed_out=True,
    ) == P(0)


def test_owner_and_administrators_are_not_bound_by_a_timeout() -> None:
    owner = MemberGrant(
        is_owner=True, is_member=True, everyone=DEFAULT_MEMBER_PERMISSIONS, roles=(), timed_out=True
    )
    admin = MemberGrant(
        is_owner=False,
        is_member=True,
        everyone=DEFAULT_MEMBER_PERMISSIONS,
        roles=(P.ADMINISTRATOR,),
        timed_out=True,
    )
    assert base_permissions(owner) == ALL_PERMISSIONS
    assert base_permissions(admin) == ALL_PERMISSIONS
    assert (
        channel_permissions(
            ALL_PERMISSIONS,
            everyone_role_id=EVERYONE,
            user_id=USER,
            member_role_ids=frozenset(),
            overwrites=(),
            timed_out=True,
        )
        == ALL_PERMISSIONS
    )


def test_an_expired_timeout_does_not_apply() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert running_timeout(None, now) is None
    assert running_timeout(now - timedelta(seconds=1), now) is None
    assert running_timeout(now, now) is None
    later = now + timedelta(minutes=5)
    assert running_timeout(later, now) == later
    assert running_timeout(later.replace(tzinfo=None), now) == later  # SQLite's naive UTC


def test_every_permission_bit_has_a_flag_of_its_name() -> None:
    assert [flag.name for flag in PermissionFlag] == [bit.name for bit in Permission]
    assert flags_of(16 | 8192) == [PermissionFlag.MANAGE_CHANNELS, PermissionFlag.MANAGE_MESSAGES]
    assert flags_of(0) == [] and flags_of(1 << 8) == []  # bit 8 names nothing here


def test_an_input_gives_permissions_as_a_string_or_by_name_not_both() -> None:
    both = (PermissionFlag.MANAGE_CHANNELS, PermissionFlag.MANAGE_MESSAGES)
    assert (
        permissions_from_input(None, list(both), "p", "f")
        == Permission.MANAGE_CHANNELS | Permission.MANAGE_MESSAGES
    )
    assert permissions_from_input("16", None, "p", "f") == Permission.MANAGE_CHANNELS
    assert permissions_from_input(None, None, "p", "f") is None
    with pytest.raises(ValidationFailed) as refused:
        permissions_from_input("16", [PermissionFlag.MANAGE_CHANNELS], "p", "f")
    assert refused.value.field == "f"
