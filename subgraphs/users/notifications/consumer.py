"""The durable consumer that turns message and friend events into notifications (run by `beep worker`).

It reads every store's outbox at least once, in order (kernel/events/relay.py `Consumer`). For a
MessageCreated:

1. candidates: the members mentioned (`<@id>` tokens), the author of the message replied to, the channel's
   followers (ALL_MESSAGES on the channel or its server: one indexed query, at most MAX_FOLLOWERS, which
   also reads the server's kind and whether any folder of the server is followed; if one is, those of
   the folder the channel is in now: one more), in a direct conversation (any kind but SERVER) its
   members (at most MAX_DIRECT_MEMBERS: they follow it by default), and for an allowed @everyone the
   server's members, MEMBER_PAGE at a time, at most MAX_EVERYONE — for an @here only those connected now
   (the presence store, one call per page), who alone count it as their @everyone;
2. of those, the members who can view the channel now (kernel/tenancy/access.py, five queries per page of
   candidates), never the author nor anyone who blocked the author (one directory query per page);
3. their settings and snoozes for the server, the folder the channel is in when the message is handled
   (one primary-key read of the channel on the shard, per message: a channel moved out of a folder stops
   following it at once) and the channel (one directory query per page), the rules (rules.py), then one
   batched insert, and a `NotificationCreated` on `user:{id}` for each one not held back by a snooze — in
   the same directory transaction, so a stored notification is pushed exactly when it is committed.

Friends (the directory's outbox; each event is there twice, once per person's topic): a FriendRequestSent
still pending becomes the recipient's FRIEND_REQUEST (source: the request), a FriendshipStarted still
standing the requester's FRIEND_ACCEPTED (source: the same request, another user), both HIGH and held back
only by a global snooze; a FriendRequestRemoved (declined, cancelled, or a block) deletes the request's
FRIEND_REQUEST. A request already gone when its event is handled (cancelled, or removed by a block) is
not notified at all, so nothing is told about a user who has blocked the reader.

Idempotent: (source, user) is unique and recipients already notified for a source are skipped, so a
batch retried after a crash (or the second copy of a friend event) adds nothing twice. A MessageDeleted
deletes the message's notifications, a ChannelDeleted the channel's (a folder's channels each have one),
a ServerDeleted the server's (so a direct conversation erased with its friendship, or after a block,
leaves no notification of it behind); the last two delete the settings and snoozes of what is gone too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from db.ids import DIRECTORY_SHARD, new_id
from subgraphs.channels.events import ChannelDeleted
from subgraphs.friends.events import FriendRequestRemoved, FriendRequestSent, FriendshipStarted
from subgraphs.kernel.events.catalogue import Event, topic_for_user
from subgraphs.kernel.events.relay import Consumer
from subgraphs.kernel.tenancy import access
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.runtime import Runtime
from subgraphs.messages.api import mentioned_user_ids, only_here
from subgraphs.messages.events import MessageCreated, MessageDeleted
from subgraphs.servers.events import ServerDeleted
from subgraphs.users.events import NotificationCreated
from subgraphs.users.notifications import repository, rules

log = logging.getLogger("beep.notifications")

CONSUMER_NAME = "notifications"
MEMBER_PAGE = 1_000  # candidates checked per round of access and preference queries
MAX_FOLLOWERS = 10_000  # LOW notifications of one message (users following the channel at all messages)
MAX_EVERYONE = 10_000  # members an @everyone/@here reaches (the first ones by id)
MAX_DIRECT_MEMBERS = 100  # members of a direct conversation notified by default (a DM has 2)

Online = Callable[[Sequence[int]], Awaitable[set[int]]]  # which of these users are connected now
FollowersSeen = dict[tuple[int, int], repository.Followers]  # (server, channel) -> its followers

_HANDLED = (
    MessageCreated,
    MessageDeleted,
    ChannelDeleted,
    ServerDeleted,
    FriendRequestSent,
    FriendRequestRemoved,
    FriendshipStarted,
)


@dataclass
class _Fanout:
    """One message's recipients as they are found, page after page."""

    event: MessageCreated
    mentioned: set[int]
    replied: int | None
    now: datetime
    direct: bool = False  # a direct conversation: its members follow it by default, at HIGH
    online: Online | None = None  # an @here: only these users count its @everyone
    folder_id: int | None = None  # the folder the channel is in when the message is handled
    seen: set[int] = field(default_factory=set)
    rows: list[dict[str, object]] = field(default_factory=list)
    pushed: list[NotificationCreated] = field(default_factory=list)


def consumer(runtime: Runtime) -> Consumer:
    async def handle(_store: int, events: list[Event]) -> None:
        relevant = [e for e in events if isinstance(e, _HANDLED)]
        if not relevant:
            return
        uow = UnitOfWork(runtime.database, runtime.bus)
        try:
            async with uow.atomic():
                now = datetime.now(UTC)
                seen: FollowersSeen = {}  # a run of messages in one channel asks for its followers once
                for event in relevant:
                    await handle_one(uow, event, now, runtime.presence.connected, seen)
        finally:
            await uow.close()

    return Consumer(CONSUMER_NAME, handle)


async def handle_one(
    uow: UnitOfWork, event: Event, now: datetime, online: Online, seen: FollowersSeen | None = None
) -> int:
    """Handles one event of any store; how many notifications it stored."""
    directory = uow.directory()
    match event:
        case MessageCreated():
            return await notify(uow, event, now, online, seen)
        case MessageDeleted():
            await repository.delete_for_messages(directory, [event.message_id])
        case FriendRequestSent() if await repository.friend_request_pending(directory, event.request_id):
            kind = rules.NotificationKind.FRIEND_REQUEST
            return await _notify_person(uow, kind, event.recipient_id, event.sender_id, event.request_id, now)
        case FriendshipStarted(request_id=int() as request_id) if await repository.friends(
            directory, event.requester_id, event.accepter_id
        ):
            kind = rules.NotificationKind.FRIEND_ACCEPTED
            return await _notify_person(uow, kind, event.requester_id, event.accepter_id, request_id, now)
        case FriendRequestRemoved():
            await repository.delete_friend_request(directory, event.request_id)
        case ChannelDeleted():
            await repository.delete_for_channel(directory, event.server_id, event.channel_id)
        case ServerDeleted():
            await repository.delete_for_server(directory, event.server_id)
    return 0


async def _notify_person(
    uow: UnitOfWork,
    kind: rules.NotificationKind,
    user_id: int,
    actor_id: int,
    source_id: int,
    now: datetime,
) -> int:
    """One HIGH notification about another person (no server, channel or message), once per source."""
    directory = uow.directory()
    if user_id in await repository.recipients_already_notified(directory, source_id):
        return 0
    push = not rules.snoozed(await repository.global_snoozes(directory, user_id), now)
    created = NotificationCreated(
        notification_id=new_id(DIRECTORY_SHARD),
        user_id=user_id,
        kind=kind.value,
        level=rules.NotificationLevel.HIGH.value,
        server_id=None,
        channel_id=None,
        message_id=None,
        actor_id=actor_id,
        created_at=now,
        friend_request_id=source_id,
    )
    await repository.insert(directory, [_row(created, source_id, push)])
    if push:
        uow.emit(topic_for_user(user_id), created)
    return 1


async def notify(
    uow: UnitOfWork, event: MessageCreated, now: datetime, online: Online, seen: FollowersSeen | None = None
) -> int:
    """Stores (and pushes) the notifications of one message; how many it stored. A message of a server
    (not a direct conversation) that mentions no one, replies to no one and has no followers costs one
    directory query (unless a folder of the server is followed: then its channel's folder is read)."""
    directory = uow.directory()
    key = (event.server_id, event.channel_id)
    found = seen.get(key) if seen is not None else None
    if found is None:
        found = await repository.followers(directory, event.server_id, event.channel_id, MAX_FOLLOWERS)
        if seen is not None:
            seen[key] = found
    followers = found.user_ids
    direct = rules.is_direct(found.server_kind)
    mentioned = set(mentioned_user_ids(event.content))
    addressed_any = mentioned or event.reply_to_id is not None or event.mention_everyone
    if not (direct or followers or addressed_any or found.folders_followed):
        return 0
    async with uow.reading(await uow.shard_for(event.channel_id)) as shard:
        # The folder it is in now, not when the message was sent.
        folder_id = (await repository.channel_folders(shard, [event.channel_id])).get(event.channel_id)
        if folder_id is not None and found.folders_followed:
            of_folder = await repository.folder_followers(
                directory, event.server_id, folder_id, MAX_FOLLOWERS
            )
            followers = sorted({*followers, *of_folder})[:MAX_FOLLOWERS]
        replied = (
            await repository.message_author(shard, event.reply_to_id, event.channel_id)
            if event.reply_to_id is not None
            else None
        )
        here = event.mention_everyone and only_here(event.content)
        fanout = _Fanout(event, mentioned, replied, now, direct=direct, online=online if here else None)
        fanout.folder_id = folder_id
        fanout.seen = await repository.recipients_already_notified(directory, event.message_id)
        fanout.seen.add(event.author_id)
        addressed = [*mentioned, *([replied] if replied is not None else [])]
        members = (
            await access.member_ids_page(shard, event.server_id, 0, MAX_DIRECT_MEMBERS) if direct else []
        )
        candidates = list(dict.fromkeys([*addressed, *members, *followers]))
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
                after, reached = members[-1], reached + len(members)
                present = await fanout.online(members) if fanout.online is not None else None
                if present is not None:
                    members = [m for m in members if m in present]
                await _consider(shard, directory, fanout, members, present)
    await repository.insert(directory, fanout.rows)
    for created in fanout.pushed:
        uow.emit(topic_for_user(created.user_id), created)
    return len(fanout.rows)


async def _consider(
    shard: AsyncSession,
    directory: AsyncSession,
    fanout: _Fanout,
    user_ids: Sequence[int],
    present: set[int] | None = None,  # of an @here: those of user_ids already known to be connected
) -> None:
    fresh = [u for u in dict.fromkeys(user_ids) if u not in fanout.seen]
    fanout.seen.update(fresh)
    event = fanout.event
    # Whoever blocked the author hears nothing of them: no mention, reply, @everyone or group message
    # notifies the blocker (the message itself stays readable, flagged `authorBlocked` for them).
    blockers = await repository.blockers_of(directory, event.author_id, fresh)
    fresh = [u for u in fresh if u not in blockers]
    viewers = await access.channel_viewers(shard, event.channel_id, fresh)
    prefs = await repository.preferences(
        directory, sorted(viewers), event.server_id, event.channel_id, fanout.folder_id
    )
    reached = set(viewers)
    if event.mention_everyone and fanout.online is not None:
        reached = present if present is not None else await fanout.online(sorted(viewers))
    for user_id in sorted(viewers):
        mine = prefs.get(user_id) or repository.Preferences()
        signals = rules.Signals(
            mentioned=user_id in fanout.mentioned,
            replied_to=user_id == fanout.replied,
            everyone=event.mention_everyone and user_id in reached,
        )
        decision = rules.decide(signals, mine.setting(direct=fanout.direct), direct=fanout.direct)
        if decision is None:
            continue
        push = not rules.snoozed(mine.snoozes, fanout.now)
        created = NotificationCreated(
            notification_id=new_id(DIRECTORY_SHARD),
            user_id=user_id,
            kind=decision.kind.value,
            level=decision.level.value,
            server_id=event.server_id,
            channel_id=event.channel_id,
            message_id=event.message_id,
            actor_id=event.author_id,
            created_at=fanout.now,
        )
        fanout.rows.append(_row(created, event.message_id, push))
        if push:
            fanout.pushed.append(created)


def _row(created: NotificationCreated, source_id: int, pushed: bool) -> dict[str, object]:
    """The stored row of a notification (its event says what a push would: the same fields)."""
    return {
        "id": created.notification_id,
        "user_id": created.user_id,
        "kind": created.kind,
        "level": created.level,
        "source_id": source_id,
        "server_id": created.server_id,
        "channel_id": created.channel_id,
        "message_id": created.message_id,
        "actor_id": created.actor_id,
        "created_at": created.created_at,
        "read": False,
        "pushed": pushed,
    }
