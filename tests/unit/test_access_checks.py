"""The rules every `access_*` applies (kernel/tenancy/access_checks.py): what the viewer may not see is "not
found", whatever exists; what they see but may not do is refused with the caller's words."""

from __future__ import annotations

import pytest

from subgraphs.kernel.errors import NotFound, PermissionDenied, ValidationFailed
from subgraphs.kernel.tenancy.access import ChannelAccess, ServerAccess
from subgraphs.kernel.tenancy.access_checks import (
    READ,
    VIEW,
    allows,
    check_channel,
    check_server,
    holds,
    or_none,
)
from subgraphs.kernel.tenancy.permissions import Permission

pytestmark = pytest.mark.unit

P = Permission
SERVER, CHANNEL, USER = 10, 20, 30


def server(permissions: Permission, *, member: bool = True) -> ServerAccess:
    return ServerAccess(SERVER, USER, 1, "PUBLIC", member, frozenset({SERVER}), permissions)


def channel(permissions: Permission, *, member: bool = True, kind: str = "TEXT") -> ChannelAccess:
    return ChannelAccess(CHANNEL, kind, None, server(permissions, member=member), permissions)


def test_what_the_viewer_cannot_see_is_not_found_whatever_they_hold() -> None:
    hidden = [
        None,  # no such channel
        channel(P(0)),  # no View Channel
        channel(P.VIEW_CHANNEL | P.MANAGE_MESSAGES, member=False),  # a public server's outsider
    ]
    for found in hidden:
        with pytest.raises(NotFound) as caught:
            check_channel(found, needs=P.MANAGE_MESSAGES, refusal="No.", kinds=("VOICE",), wrong_kind="Kind.")
        assert (caught.value.message, caught.value.field) == ("No such channel.", "channelId")
    # Reading messages needs Read Message History to see the channel at all.
    with pytest.raises(NotFound):
        check_channel(channel(P.VIEW_CHANNEL), seen_with=READ)
    assert check_channel(channel(P.VIEW_CHANNEL)).channel_id == CHANNEL


def test_what_they_see_but_may_not_do_is_refused_with_the_callers_words() -> None:
    seen = channel(P.VIEW_CHANNEL | P.SEND_MESSAGES)
    with pytest.raises(PermissionDenied) as caught:
        check_channel(seen, needs=P.SEND_MESSAGES | P.ATTACH_FILES, refusal="No files here.", field="x")
    assert (caught.value.message, caught.value.field) == ("No files here.", "x")
    assert check_channel(seen, needs=P.SEND_MESSAGES) is seen


def test_a_wrong_kind_is_checked_before_the_permission() -> None:
    voice = channel(P.VIEW_CHANNEL)  # no Send Messages either
    with pytest.raises(ValidationFailed, match="Text only"):
        check_channel(
            channel(P.VIEW_CHANNEL, kind="VOICE"),
            needs=P.SEND_MESSAGES,
            refusal="No.",
            kinds=("TEXT",),
            wrong_kind="Text only.",
        )
    # Without a `wrong_kind`, another kind is refused like a missing permission.
    with pytest.raises(PermissionDenied, match="No"):
        check_channel(
            channel(P.VIEW_CHANNEL | P.SEND_MESSAGES, kind="VOICE"),
            needs=P.SEND_MESSAGES,
            refusal="No.",
            kinds=("TEXT",),
        )
    assert check_channel(voice, kinds=("TEXT",)) is voice


def test_needs_one_permission_or_any_of_several() -> None:
    pinner = channel(P.VIEW_CHANNEL | P.PIN_MESSAGES)
    assert holds(pinner, None)
    assert holds(pinner, P.PIN_MESSAGES)
    assert not holds(pinner, P.PIN_MESSAGES | P.MANAGE_MESSAGES)  # one value: all of its bits
    assert holds(pinner, (P.MANAGE_MESSAGES, P.PIN_MESSAGES))  # a tuple: any one of them
    assert not holds(pinner, ())  # no permission suffices (an author-only action)


def test_a_refusal_must_be_worded() -> None:
    with pytest.raises(TypeError):
        check_channel(channel(P.VIEW_CHANNEL), needs=P.MANAGE_MESSAGES)


def test_the_yes_or_no_form_lets_through_what_check_channel_lets_through() -> None:
    """`allows` (behind `allowed_channel`: link previews, the voice guard) is `check_channel`'s verdict."""
    accesses = [
        None,
        channel(P(0)),
        channel(P.CONNECT),  # no View Channel
        channel(P.VIEW_CHANNEL | P.CONNECT, member=False),
        channel(P.VIEW_CHANNEL),
        channel(P.VIEW_CHANNEL | P.CONNECT),
        channel(P.VIEW_CHANNEL | P.READ_MESSAGE_HISTORY | P.EMBED_LINKS),
    ]
    verdicts = set()
    for found in accesses:
        for needs in (None, P.CONNECT, P.CONNECT | P.SPEAK, (P.EMBED_LINKS, P.CONNECT), ()):
            for seen_with in (VIEW, READ):
                try:
                    check_channel(found, seen_with=seen_with, needs=needs, refusal="No.")
                    passed = True
                except (NotFound, PermissionDenied):
                    passed = False
                assert allows(found, needs, seen_with=seen_with) is passed, (found, needs, seen_with)
                verdicts.add(passed)
    assert verdicts == {True, False}


def test_servers_are_seen_by_their_members_only() -> None:
    with pytest.raises(NotFound, match="No such server"):
        check_server(server(P.MANAGE_SERVER, member=False), needs=P.MANAGE_SERVER, refusal="No.")
    with pytest.raises(NotFound):
        check_server(None)
    with pytest.raises(PermissionDenied, match="Manage Server"):
        check_server(server(P.VIEW_CHANNEL), needs=P.MANAGE_SERVER, refusal="You need Manage Server.")
    member = server(P.MANAGE_SERVER)
    assert check_server(member, needs=P.MANAGE_SERVER, refusal="No.") is member


async def test_a_query_answers_none_where_a_mutation_is_refused() -> None:
    async def refuse(error: Exception) -> int:
        raise error

    async def allow() -> int:
        return 7

    assert await or_none(refuse(NotFound("No such channel."))) is None
    assert await or_none(refuse(PermissionDenied("No."))) is None
    assert await or_none(allow()) == 7
    with pytest.raises(ValidationFailed):  # not an access answer: it still fails
        await or_none(refuse(ValidationFailed("Bad.")))
