"""Invite rules without services: who may invite, what a code looks like, when an invite is dead."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from db.ids import IdGenerator
from subgraphs.kernel.errors import ErrorCode, NotFound, ValidationFailed
from subgraphs.kernel.tenancy.permissions import ALL_PERMISSIONS, DEFAULT_MEMBER_PERMISSIONS, Permission
from subgraphs.servers import discovery, invites
from subgraphs.servers.invites import InviteState
from subgraphs.servers.models import InviteRow

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
NOTHING = Permission(0)


def test_any_member_may_invite_to_a_public_server_unless_everyone_lost_the_bit() -> None:
    assert invites.may_create_invites("PUBLIC", DEFAULT_MEMBER_PERMISSIONS, NOTHING)
    stripped = DEFAULT_MEMBER_PERMISSIONS & ~Permission.CREATE_INVITE
    assert not invites.may_create_invites("PUBLIC", stripped, NOTHING)
    assert invites.may_create_invites("PUBLIC", stripped | Permission.MANAGE_SERVER, NOTHING)


def test_on_a_private_server_only_a_role_beyond_everyone_or_manage_server_lets_you_invite() -> None:
    # @everyone carries Create Invite by default: on a private server that alone is not enough.
    assert not invites.may_create_invites("PRIVATE", DEFAULT_MEMBER_PERMISSIONS, NOTHING)
    assert invites.may_create_invites("PRIVATE", DEFAULT_MEMBER_PERMISSIONS, Permission.CREATE_INVITE)
    assert invites.may_create_invites(
        "PRIVATE", DEFAULT_MEMBER_PERMISSIONS | Permission.MANAGE_SERVER, Permission.MANAGE_SERVER
    )
    assert invites.may_create_invites("PRIVATE", ALL_PERMISSIONS, NOTHING)  # the owner, administrators
    assert not invites.may_create_invites("PRIVATE", DEFAULT_MEMBER_PERMISSIONS, Permission.KICK_MEMBERS)


def test_codes_are_long_random_and_url_safe() -> None:
    codes = {invites.new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(c) == invites.CODE_LENGTH >= 8 and c.isalnum() and c.isascii() for c in codes)
    assert all(invites.is_code(c) for c in codes)


@pytest.mark.parametrize("garbage", ["", "abc", "short12", "has space1", "sl/ash123", "é" * 10, "x" * 33])
def test_garbage_codes_are_refused_with_a_format_error(garbage: str) -> None:
    assert not invites.is_code(garbage)
    with pytest.raises(ValidationFailed) as caught:
        invites.check_code(garbage)
    assert (caught.value.code, caught.value.field) == (ErrorCode.INVALID_FORMAT, "code")


@pytest.mark.parametrize(
    ("max_age", "max_uses", "field"),
    [
        (None, 101, "maxUses"),
        (None, -1, "maxUses"),
        (7 * 86400 + 1, 0, "maxAgeSeconds"),
        (-5, 0, "maxAgeSeconds"),
    ],
)
def test_limits_out_of_range(max_age: int | None, max_uses: int, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        invites.check_limits(max_age, max_uses)
    assert (caught.value.code, caught.value.field) == (ErrorCode.INVALID_INPUT, field)


def test_limits_in_range() -> None:
    assert invites.check_limits(None, 0) == invites.Limits(None, 0)
    assert invites.check_limits(0, 100) == invites.Limits(None, 100)
    assert invites.check_limits(7 * 86400, 1).lifetime == timedelta(days=7)


def _invite(**fields: object) -> InviteRow:
    values: dict[str, object] = {
        "code": "abcdefghij",
        "server_id": 1,
        "creator_id": 2,
        "created_at": NOW,
        "expires_at": None,
        "max_uses": 0,
        "uses": 0,
        "revoked_at": None,
    }
    values.update(fields)
    return InviteRow(**values)


def test_invite_states() -> None:
    assert invites.invite_state(_invite(uses=10_000), NOW) is InviteState.USABLE  # unlimited
    assert invites.invite_state(_invite(max_uses=2, uses=1), NOW) is InviteState.USABLE
    assert invites.invite_state(_invite(max_uses=2, uses=2), NOW) is InviteState.EXHAUSTED
    assert invites.invite_state(_invite(expires_at=NOW), NOW) is InviteState.EXPIRED
    assert invites.invite_state(_invite(expires_at=NOW + timedelta(seconds=1)), NOW) is InviteState.USABLE
    revoked = _invite(revoked_at=NOW, expires_at=NOW, max_uses=1, uses=1)
    assert invites.invite_state(revoked, NOW) is InviteState.REVOKED  # revoked wins


def test_dead_invites_raise_their_errors() -> None:
    with pytest.raises(NotFound, match="revoked"):
        invites.check_usable(_invite(revoked_at=NOW), NOW)
    with pytest.raises(NotFound, match="expired"):
        invites.check_usable(_invite(expires_at=NOW - timedelta(seconds=1)), NOW)
    with pytest.raises(ValidationFailed) as caught:
        invites.check_usable(_invite(max_uses=1, uses=1), NOW)
    assert caught.value.code is ErrorCode.LIMIT_REACHED


def test_discovery_cursors_round_trip_and_reject_garbage() -> None:
    position = discovery.Position(1, IdGenerator().new_id(7))
    assert discovery.decode_cursor(discovery.encode_cursor(position)) == position
    for garbage in (
        "",
        "%%%",
        "aWQ6MTIz",
        base64.urlsafe_b64encode(f"other:1:{position.server_id}".encode()).decode(),
        "ZGlzY292ZXI6Mjox",
    ):
        assert discovery.decode_cursor(garbage) is None
