"""Events the users context publishes.

NotificationCreated: a stored notification, on its recipient's topic (`user:{id}`), through the directory's
outbox, when it is pushed (not while a snooze holds it back)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from subgraphs.kernel.events.catalogue import Event


@dataclass(frozen=True)
class NotificationCreated(Event):
    notification_id: int
    user_id: int
    kind: str
    level: str
    server_id: int | None
    channel_id: int | None
    message_id: int | None
    actor_id: int | None
    created_at: datetime
    friend_request_id: int | None = None  # FRIEND_REQUEST and FRIEND_ACCEPTED: the request
