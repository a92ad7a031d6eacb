"""The rules of notifications, without storage: which level a message gets for a recipient, which setting
applies, whether a snooze holds the push back.

- HIGH: a mention of you (`<@you>`), a reply to your message, `@everyone`/`@here` sent by someone allowed
  to (the message's `mention_everyone` flag is only set then).
- LOW: any other message, only in a channel you follow at ALL_MESSAGES.
- Settings per server, per folder and per channel; the channel's overrides its folder's (the folder it is
  in when the message is handled), which overrides the server's; with none, DEFAULT_SETTING
  (DIRECT_DEFAULT_SETTING in a direct conversation: any kind of server but SERVER, where every message
  of the others is a HIGH DIRECT_MESSAGE, as on Discord). NOTHING (muted) means no notification at all,
  not even a mention.
- Friends: a friend request to you (FRIEND_REQUEST) and your request accepted (FRIEND_ACCEPTED) are HIGH,
  whatever the settings (they belong to no server); only the global snooze holds their push back.
- A snooze (global, server, folder or channel) keeps the notification stored but unpushed until it ends.
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
    DIRECT_MESSAGE = "DIRECT_MESSAGE"  # any message of the others in a direct conversation (by default)
    FRIEND_REQUEST = "FRIEND_REQUEST"  # someone asked you to be friends (the actor)
    FRIEND_ACCEPTED = "FRIEND_ACCEPTED"  # the actor accepted your friend request
    # The column is a string: adding a kind needs no migration.


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
# A direct conversation (a server of any kind but SERVER: DM, and group DMs if they come) is written to
# you: every message of the others notifies, at HIGH, unless you chose otherwise for it.
DIRECT_DEFAULT_SETTING = NotificationSetting.ALL_MESSAGES
SERVER_KIND = "SERVER"


def is_direct(server_kind: str | None) -> bool:
    """Whether a server of this kind is a direct conversation (unknown: a plain server)."""
    return server_kind is not None and server_kind != SERVER_KIND


@dataclass(frozen=True)
class Signals:
    """What a message says about one recipient."""

    mentioned: bool = False  # `<@recipient>` in the content
    replied_to: bool = False  # the message replies to one of the recipient's messages
    everyone: bool = False  # @everyone by someone allowed to, or @here while the recipient is connected


@dataclass(frozen=True)
class Decision:
    kind: NotificationKind
    level: NotificationLevel


def effective_setting(
    server: NotificationSetting | None,
    channel: NotificationSetting | None,
    *,
    folder: NotificationSetting | None = None,
    direct: bool = False,
) -> NotificationSetting:
    """The channel's setting overrides its folder's, which overrides the server's; with none, the default
    (of a direct conversation when `direct`). A folder's own effective setting is `(server, folder)`."""
    for chosen in (channel, folder, server):
        if chosen is not None:
            return chosen
    return DIRECT_DEFAULT_SETTING if direct else DEFAULT_SETTING


def decide(signals: Signals, setting: NotificationSetting, *, direct: bool = False) -> Decision | None:
    """The notification a message gives one recipient under their setting, or None. In a direct
    conversation (`direct`) any message you follow is HIGH: it is written to you."""
    if setting is NotificationSetting.NOTHING:
        return None
    if signals.mentioned:
        return Decision(NotificationKind.MENTION, NotificationLevel.HIGH)
    if signals.replied_to:
        return Decision(NotificationKind.REPLY, NotificationLevel.HIGH)
    if signals.everyone:
        return Decision(NotificationKind.EVERYONE, NotificationLevel.HIGH)
    if setting is NotificationSetting.ALL_MESSAGES:
        if direct:
            return Decision(NotificationKind.DIRECT_MESSAGE, NotificationLevel.HIGH)
        return Decision(NotificationKind.MESSAGE, NotificationLevel.LOW)
    return None


def snoozed(until: Iterable[datetime | None], now: datetime) -> bool:
    """Whether any of these snoozes (global, server, folder, channel) still runs at `now`."""
    return any(u is not None and _utc(u) > now for u in until)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
