"""The rules of notification levels, settings and snoozes (subgraphs/users/notifications/rules.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from subgraphs.users.notifications.rules import (
    DEFAULT_SETTING,
    Decision,
    NotificationKind,
    NotificationLevel,
    NotificationSetting,
    Signals,
    decide,
    effective_setting,
    is_direct,
    snoozed,
)

ALL = NotificationSetting.ALL_MESSAGES
MENTIONS = NotificationSetting.MENTIONS_ONLY
NOTHING = NotificationSetting.NOTHING
HIGH, LOW = NotificationLevel.HIGH, NotificationLevel.LOW

pytestmark = pytest.mark.unit


def test_the_default_is_mentions_only() -> None:
    assert DEFAULT_SETTING is MENTIONS
    assert effective_setting(None, None) is MENTIONS


@pytest.mark.parametrize(
    ("server", "channel", "expected"),
    [
        (ALL, None, ALL),
        (NOTHING, None, NOTHING),
        (ALL, NOTHING, NOTHING),  # the channel overrides the server, down...
        (NOTHING, ALL, ALL),  # ...and up
        (None, MENTIONS, MENTIONS),
        (ALL, MENTIONS, MENTIONS),
    ],
)
def test_a_channel_setting_overrides_the_server_setting(
    server: NotificationSetting | None, channel: NotificationSetting | None, expected: NotificationSetting
) -> None:
    assert effective_setting(server, channel) is expected


@pytest.mark.parametrize(
    ("server", "folder", "channel", "expected"),
    [
        (None, NOTHING, None, NOTHING),  # a muted folder mutes its channels
        (ALL, NOTHING, None, NOTHING),  # ...over the server's setting
        (NOTHING, ALL, None, ALL),  # a followed folder in a muted server
        (ALL, NOTHING, MENTIONS, MENTIONS),  # the channel's own setting overrides its folder's
        (NOTHING, ALL, NOTHING, NOTHING),
        (ALL, None, None, ALL),  # a folder with no setting: the server's
        (None, None, None, MENTIONS),  # none: the default
    ],
)
def test_a_channel_inherits_its_folder_setting_before_the_server_one(
    server: NotificationSetting | None,
    folder: NotificationSetting | None,
    channel: NotificationSetting | None,
    expected: NotificationSetting,
) -> None:
    assert effective_setting(server, channel, folder=folder) is expected


def test_a_folder_setting_applies_in_a_direct_conversation_too_and_the_default_stays() -> None:
    assert effective_setting(None, None, folder=MENTIONS, direct=True) is MENTIONS
    assert effective_setting(None, None, folder=None, direct=True) is ALL


@pytest.mark.parametrize("setting", [ALL, MENTIONS])
def test_mentions_replies_and_everyone_are_high_unless_muted(setting: NotificationSetting) -> None:
    assert decide(Signals(mentioned=True), setting) == Decision(NotificationKind.MENTION, HIGH)
    assert decide(Signals(replied_to=True), setting) == Decision(NotificationKind.REPLY, HIGH)
    assert decide(Signals(everyone=True), setting) == Decision(NotificationKind.EVERYONE, HIGH)


def test_a_mention_wins_over_a_reply_and_everyone() -> None:
    both = Signals(mentioned=True, replied_to=True, everyone=True)
    assert decide(both, MENTIONS) == Decision(NotificationKind.MENTION, HIGH)
    assert decide(Signals(replied_to=True, everyone=True), MENTIONS) == Decision(NotificationKind.REPLY, HIGH)


def test_a_plain_message_is_low_only_for_followers_of_all_messages() -> None:
    assert decide(Signals(), ALL) == Decision(NotificationKind.MESSAGE, LOW)
    assert decide(Signals(), MENTIONS) is None
    assert decide(Signals(), NOTHING) is None


def test_a_direct_conversation_follows_every_message_at_high_unless_set_otherwise() -> None:
    assert [is_direct(k) for k in ("DM", "GROUP_DM", "SERVER", None)] == [True, True, False, False]
    direct = effective_setting(None, None, direct=True)
    assert direct is ALL
    assert decide(Signals(), direct, direct=True) == Decision(NotificationKind.DIRECT_MESSAGE, HIGH)
    assert decide(Signals(mentioned=True), direct, direct=True) == Decision(NotificationKind.MENTION, HIGH)
    # Chosen explicitly, a setting still applies in a direct conversation.
    assert effective_setting(NOTHING, None, direct=True) is NOTHING
    assert effective_setting(None, MENTIONS, direct=True) is MENTIONS
    assert decide(Signals(), MENTIONS, direct=True) is None
    assert decide(Signals(mentioned=True), NOTHING, direct=True) is None


def test_muted_means_nothing_at_all() -> None:
    for signals in (Signals(mentioned=True), Signals(replied_to=True), Signals(everyone=True), Signals()):
        assert decide(signals, NOTHING) is None


def test_a_snooze_holds_until_its_time_whichever_scope_set_it() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert not snoozed([], now)
    assert not snoozed([None, None], now)
    assert snoozed([None, now + timedelta(seconds=1)], now)
    assert not snoozed([now], now)  # over at its time
    assert not snoozed([now - timedelta(minutes=5)], now)
    assert snoozed([now - timedelta(days=1), None, now + timedelta(days=1)], now)
    assert snoozed([(now + timedelta(hours=1)).replace(tzinfo=None)], now)  # SQLite's naive UTC
