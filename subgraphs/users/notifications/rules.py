"""The rules of notifications, without storage: which level a message gets for a recipient, which setting
applies, whether a snooze holds the push back.

- HIGH: a mention of you (`<@you>`), a reply to your message, `@everyone`/`@here` sent by someone allowed
  to (the message's `mention_everyone` flag is only set then).
- LOW: any other message, only in a channel you follow at ALL_MESSAGES.
- Settings per server and per channel; the channel's overrides the server's; with neither, DEFAULT_SETTING.
  NOTHING (muted) means no notification at all, not even a mention.
- A snooze (global, server or channel) keeps the notification stored but unpushed until it ends.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime


class NotificationKind(enum.Enum):
    MENTION = "MENTION"
    REPLY = "REPLY"
    EVERYONE = "EVERYONE"
    MESSAGE = "MESSAGE"
    # FRIEND_REQUEST comes with the friends issue: the column is a string, so adding a kind needs no
    # migration.


class NotificationLevel(enum.Enum):
    HIGH = "HIGH"
    LOW = "LOW"


class NotificationSetting(enum.Enum):
    ALL_MESSAGES = "ALL_MESSAGES"
    MENTIONS_ONLY = "MENTIONS_ONLY"
    NOTHING = "NOTHING"


# Discord's default depends on the server's size (all messages for small ones). Beep picks one for every
# server: mentions only. Following everything is an explicit choice, so the followers of a channel are
# the users who made it, found by one indexed query whatever the server's size.
DEFAULT_SETTING = NotificationSetting.MENTIONS_ONLY


@dataclass(frozen=True)
class Signals:
    """What a message says about one recipient."""

    mentioned: bool = False  # `<@recipient>` in the content
    replied_to: bool = False  # the message replies to one of the recipient's messages
    everyone: bool = False  # @everyone/@here by someone allowed to


@dataclass(frozen=True)
class Decision:
    kind: NotificationKind
    level: NotificationLevel


def effective_setting(
    server: NotificationSetting | None, channel: NotificationSetting | None
) -> NotificationSetting:
    """The channel's setting overrides the server's; with neither, the default."""
    if channel is not None:
        return channel
    if server is not None:
        return server
    return DEFAULT_SETTING


def decide(signals: Signals, setting: NotificationSetting) -> Decision | None:
    """The notification a message gives one recipient under their setting, or None."""
    if setting is NotificationSetting.NOTHING:
        return None
    if signals.mentioned:
        return Decision(NotificationKind.MENTION, NotificationLevel.HIGH)
    if signals.replied_to:
        return Decision(NotificationKind.REPLY, NotificationLevel.HIGH)
    if signals.everyone:
        return Decision(NotificationKind.EVERYONE, NotificationLevel.HIGH)
    if setting is NotificationSetting.ALL_MESSAGES:
        return Decision(NotificationKind.MESSAGE, NotificationLevel.LOW)
    return None


def snoozed(until: Iterable[datetime | None], now: datetime) -> bool:
    """Whether any of these snoozes (global, server, channel) still runs at `now`."""
    return any(u is not None and _utc(u) > now for u in until)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
