"""Events the messages context publishes (audience: the channel's topic)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from subgraphs.kernel.events.catalogue import Event


@dataclass(frozen=True)
class MessageCreated(Event):
    message_id: int
    channel_id: int
    server_id: int
    author_id: int
    content: str
    reply_to_id: int | None
    created_at: datetime
    nonce: str | None
    mention_everyone: bool = False
    # A webhook's message: who is shown as its author, and its embeds (JSON).
    webhook_id: int | None = None
    author_name: str | None = None
    author_avatar_url: str | None = None
    embeds: str | None = None
    # Names as the send read them, for live events' `author { username }` and `channel { name }` (None:
    # an older event, a webhook's, or a replay, which reads the current ones).
    author_username: str | None = None
    channel_name: str | None = None


@dataclass(frozen=True)
class MessageUpdated(Event):
    message_id: int
    channel_id: int
    server_id: int
    author_id: int
    content: str
    reply_to_id: int | None
    created_at: datetime
    edited_at: datetime
    mention_everyone: bool = False


@dataclass(frozen=True)
class MessageDeleted(Event):
    message_id: int
    channel_id: int
    server_id: int


@dataclass(frozen=True)
class ReactionChanged(Event):
    message_id: int
    channel_id: int
    server_id: int
    user_id: int
    emoji: str
    added: bool


@dataclass(frozen=True)
class PinChanged(Event):
    message_id: int
    channel_id: int
    server_id: int
    pinned: bool
    by_user_id: int


@dataclass(frozen=True)
class TypingStarted(Event):
    """Ephemeral: never stored; clients show it until `expires_at` (or the user's next message)."""

    channel_id: int
    server_id: int
    user_id: int
    expires_at: datetime


@dataclass(frozen=True)
class LinkPreviewsChanged(Event):
    """A message's previews arrived (or were removed): `previews` is the full new list, as JSON."""

    message_id: int
    channel_id: int
    server_id: int
    previews: str


@dataclass(frozen=True)
class LinkPreviewsRequested(Event):
    """Previews were asked for again (unsuppressed): for the previewer only, clients never see it."""

    message_id: int
    channel_id: int
    server_id: int
    content: str
