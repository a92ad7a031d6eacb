"""The durable consumer that turns message events into notifications (run by `beep worker`).

It reads every shard's outbox at least once, in order (kernel/relay.py `Consumer`). For a MessageCreated:

1. candidates: the members mentioned (`<@id>` tokens), the author of the message replied to, the channel's
   followers (ALL_MESSAGES on the channel or its server: one indexed query, at most MAX_FOLLOWERS), and for
   an allowed @everyone/@here the server's members, MEMBER_PAGE at a time, at most MAX_EVERYONE;
2. of those, the members who can view the channel now (kernel/access.py, five queries per page of
   candidates), never the author;
3. their settings and snoozes (one directory query per page), the rules (rules.py), then one batched
   insert, and a `NotificationCreated` on `user:{id}` for each one not held back by a snooze — in the same
   directory transaction, so a stored notification is pushed exactly when it is committed.

Idempotent: (source, user) is unique and recipients already notified for a message are skipped, so a
batch retried after a crash adds nothing twice. A MessageDeleted deletes the message's notifications.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from db.ids import DIRECTORY_SHARD, new_id
from subgraphs.kernel import access
from subgraphs.kernel.events import Event, topic_for_user
from subgraphs.kernel.relay import Consumer
from subgraphs.kernel.runtime import Runtime
from subgraphs.kernel.uow import UnitOfWork
from subgraphs.messages.events import MessageCreated, MessageDeleted
from subgraphs.messages.mentions import mentioned_user_ids
from subgraphs.users.notifications import repository, rules
from subgraphs.users.notifications.events import NotificationCreated

log = logging.getLogger("beep.notifications")

CONSUMER_NAME = "notifications"
MEMBER_PAGE = 1_000  # candidates checked per round of access and preference queries
MAX_FOLLOWERS = 10_000  # LOW notifications of one message (users following the channel at all messages)
MAX_EVERYONE = 10_000  # members an @everyone/@here reaches (the first ones by id)


@dataclass
class _Fanout:
    """One message's recipients as they are found, page after page."""

    event: MessageCreated
    mentioned: set[int]
    replied: int | None
    now: datetime
    seen: set[int] = field(default_factory=set)
    rows: list[dict[str, object]] = field(default_factory=list)
    pushed: list[NotificationCreated] = field(default_factory=list)


def consumer(runtime: Runtime) -> Consumer:
    async def handle(_store: int, events: list[Event]) -> None:
        relevant = [e for e in events if isinstance(e, MessageCreated | MessageDeleted)]
        if not relevant:
            return
        uow = UnitOfWork(runtime.database, runtime.bus)
        try:
            async with uow.atomic():
                now = datetime.now(UTC)
                for event in relevant:
                    if isinstance(event, MessageCreated):
                        await notify(uow, event, now)
                    else:
                        await repository.delete_for_messages(uow.directory(), [event.message_id])
        finally:
            await uow.close()

    return Consumer(CONSUMER_NAME, handle)


async def notify(uow: UnitOfWork, event: MessageCreated, now: datetime) -> int:
    """Stores (and pushes) the notifications of one message; how many it stored. A message that mentions
    no one, replies to no one and has no followers costs one directory query."""
    directory = uow.directory()
    followers = await repository.followers(directory, event.server_id, event.channel_id, MAX_FOLLOWERS)
    mentioned = set(mentioned_user_ids(event.content))
    if not (followers or mentioned or event.reply_to_id is not None or event.mention_everyone):
        return 0
    async with uow.reading(await uow.shard_for(event.channel_id)) as shard:
        replied = (
            await repository.message_author(shard, event.reply_to_id, event.channel_id)
            if event.reply_to_id is not None
            else None
        )
        fanout = _Fanout(event, mentioned, replied, now)
        fanout.seen = await repository.recipients_already_notified(directory, event.message_id)
        fanout.seen.add(event.author_id)
        direct = [*mentioned, *([replied] if replied is not None else [])]
        candidates = list(dict.fromkeys([*direct, *followers]))
        for start in range(0, len(candidates), MEMBER_PAGE):
            await _consider(shard, directory, fanout, candidates[start : start + MEMBER_PAGE])
        if event.mention_everyone:
            after, reached = 0, 0
            while reached < MAX_EVERYONE:
                members = await access.member_ids_page(
                    shard, event.server_id, after, min(MEMBER_PAGE, MAX_EVERYONE - reached)
                )
                if not members:
                    break
                await _consider(shard, directory, fanout, members)
                after, reached = members[-1], reached + len(members)
    await repository.insert(directory, fanout.rows)
    for created in fanout.pushed:
        uow.emit(topic_for_user(created.user_id), created)
    return len(fanout.rows)


async def _consider(
    shard: AsyncSession, directory: AsyncSession, fanout: _Fanout, user_ids: Sequence[int]
) -> None:
    fresh = [u for u in dict.fromkeys(user_ids) if u not in fanout.seen]
    fanout.seen.update(fresh)
    event = fanout.event
    viewers = await access.channel_viewers(shard, event.channel_id, fresh)
    prefs = await repository.preferences(directory, sorted(viewers), event.server_id, event.channel_id)
    for user_id in sorted(viewers):
        mine = prefs.get(user_id) or repository.Preferences()
        signals = rules.Signals(
            mentioned=user_id in fanout.mentioned,
            replied_to=user_id == fanout.replied,
            everyone=event.mention_everyone,
        )
        decision = rules.decide(signals, mine.setting)
        if decision is None:
            continue
        push = not rules.snoozed(mine.snoozes, fanout.now)
        notification_id = new_id(DIRECTORY_SHARD)
        fanout.rows.append(
            {
                "id": notification_id,
                "user_id": user_id,
                "kind": decision.kind.value,
                "level": decision.level.value,
                "source_id": event.message_id,
                "server_id": event.server_id,
                "channel_id": event.channel_id,
                "message_id": event.message_id,
                "actor_id": event.author_id,
                "created_at": fanout.now,
                "read": False,
                "pushed": push,
            }
        )
        if push:
            fanout.pushed.append(
                NotificationCreated(
                    notification_id=notification_id,
                    user_id=user_id,
                    kind=decision.kind.value,
                    level=decision.level.value,
                    server_id=event.server_id,
                    channel_id=event.channel_id,
                    message_id=event.message_id,
                    actor_id=event.author_id,
                    created_at=fanout.now,
                )
            )
