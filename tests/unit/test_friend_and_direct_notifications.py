"""The notifications consumer for friends and direct conversations, on real SQLite files: a friend event
handled twice (the relay retries; each friend event is also in the log twice, once per person's topic)
stores and pushes one notification; a global snooze stores without pushing; a request already gone is
not notified, a removed one takes its notification along; a direct conversation notifies the other
member of every message at HIGH unless they chose otherwise, never the author; whoever blocked an author
is notified of nothing they write, in a group or a server."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from db.ids import DIRECTORY_SHARD, new_id
from subgraphs.friends.events import FriendRequestRemoved, FriendRequestSent, FriendshipStarted
from subgraphs.friends.models import BlockRow, FriendRequestRow, FriendshipRow
from subgraphs.kernel.events.bus import InProcessBus
from subgraphs.kernel.events.catalogue import Event
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.messages.events import MessageCreated
from subgraphs.servers.events import ServerDeleted
from subgraphs.users.notifications import consumer
from subgraphs.users.notifications.models import NotificationPreferenceRow, NotificationRow
from tests.unit.notification_consumer_helpers import (
    SHARD,
    Tenant,
    add_server,
    connected,
    pushed_topics,
    stored,
    tenant,
)

__all__ = ["tenant"]  # the fixture (notification_consumer_helpers.py)


async def handle(t: Tenant, *events: Event) -> int:
    """Each event in one transaction, as the consumer's handler does; how many notifications were stored."""
    uow = UnitOfWork(t.database, InProcessBus())
    made = 0
    try:
        async with uow.atomic():
            for event in events:
                made += await consumer.handle_one(uow, event, datetime.now(UTC), connected())
    finally:
        await uow.close()
    return made


async def pending_request(t: Tenant, sender: str, recipient: str) -> FriendRequestSent:
    u = t.users
    request_id = new_id(DIRECTORY_SHARD)
    low, high = sorted((u[sender], u[recipient]))
    async with t.database.directory_session() as directory, directory.begin():
        directory.add(
            FriendRequestRow(
                id=request_id,
                sender_id=u[sender],
                recipient_id=u[recipient],
                user_low_id=low,
                user_high_id=high,
            )
        )
    return FriendRequestSent(request_id, u[sender], u[recipient])


async def snooze_everything(t: Tenant, name: str) -> None:
    async with t.database.directory_session() as directory, directory.begin():
        directory.add(
            NotificationPreferenceRow(
                user_id=t.users[name],
                scope_id=0,
                scope="GLOBAL",
                server_id=None,
                level=None,
                snoozed_until=datetime.now(UTC) + timedelta(hours=1),
            )
        )


async def test_a_friend_request_handled_twice_is_one_high_notification_pushed_once(tenant: Tenant) -> None:
    u = tenant.users
    sent = await pending_request(tenant, "bob", "carol")
    # The event is in the log twice (both people's topics) and the relay may hand a batch over again.
    assert await handle(tenant, sent, sent) == 1
    assert await handle(tenant, sent) == 0
    assert await stored(tenant) == [(u["carol"], "FRIEND_REQUEST", True)]
    assert await pushed_topics(tenant) == [f"user:{u['carol']}"]
    async with tenant.database.directory_session() as directory:
        row = await directory.scalar(sa.select(NotificationRow))
    assert row is not None
    assert (row.level, row.actor_id, row.source_id) == ("HIGH", u["bob"], sent.request_id)
    assert (row.server_id, row.channel_id, row.message_id) == (None, None, None)


async def test_a_global_snooze_stores_a_friend_request_without_pushing_it(tenant: Tenant) -> None:
    u = tenant.users
    await snooze_everything(tenant, "carol")
    await handle(tenant, await pending_request(tenant, "bob", "carol"))
    assert await stored(tenant) == [(u["carol"], "FRIEND_REQUEST", False)]
    assert await pushed_topics(tenant) == []


async def test_a_request_gone_is_not_notified_and_a_removed_one_takes_its_notification(
    tenant: Tenant,
) -> None:
    u = tenant.users
    # Cancelled (or removed by a block) before the consumer saw it: nothing, not even a push.
    gone = FriendRequestSent(new_id(DIRECTORY_SHARD), u["bob"], u["carol"])
    assert await handle(tenant, gone) == 0
    sent = await pending_request(tenant, "bob", "carol")
    await handle(tenant, sent)
    assert await stored(tenant) == [(u["carol"], "FRIEND_REQUEST", True)]
    removed = FriendRequestRemoved(sent.request_id, u["bob"], u["carol"], "DECLINED")
    await handle(tenant, removed, removed)
    assert await stored(tenant) == []


async def test_an_accepted_request_notifies_the_requester_once(tenant: Tenant) -> None:
    u = tenant.users
    sent = await pending_request(tenant, "bob", "carol")
    await handle(tenant, sent)
    low, high = sorted((u["bob"], u["carol"]))
    async with tenant.database.directory_session() as directory, directory.begin():
        await directory.execute(sa.delete(FriendRequestRow))
        directory.add(FriendshipRow(user_low_id=low, user_high_id=high))
    started = FriendshipStarted(u["bob"], u["carol"], request_id=sent.request_id)
    assert await handle(tenant, started, started) == 1
    assert await stored(tenant) == sorted(
        [(u["bob"], "FRIEND_ACCEPTED", True), (u["carol"], "FRIEND_REQUEST", True)]
    )
    # A friendship already over when the event is handled (removed, blocked): nothing more.
    other = await pending_request(tenant, "extra", "carol")
    assert await handle(tenant, FriendshipStarted(u["extra"], u["carol"], request_id=other.request_id)) == 0
    # Events written before the request was recorded in them: nothing to key it on, nothing stored.
    assert await handle(tenant, FriendshipStarted(u["bob"], u["carol"])) == 0


async def direct_conversation(t: Tenant, kind: str = "DM") -> tuple[int, int]:
    """A conversation of `kind` between bob and carol: (server, channel)."""
    return await add_server(t.database, t.users["bob"], [t.users["bob"], t.users["carol"]], kind=kind)


def dm(t: Tenant, server_id: int, channel_id: int, author: str, content: str) -> MessageCreated:
    return MessageCreated(
        message_id=new_id(SHARD),
        channel_id=channel_id,
        server_id=server_id,
        author_id=t.users[author],
        content=content,
        reply_to_id=None,
        created_at=datetime.now(UTC),
        nonce=None,
    )


async def test_every_message_of_a_direct_conversation_notifies_the_other_at_high(tenant: Tenant) -> None:
    u = tenant.users
    for kind in ("DM", "GROUP_DM"):  # any kind but SERVER is a direct conversation
        server_id, channel_id = await direct_conversation(tenant, kind)
        event = dm(tenant, server_id, channel_id, "bob", "hello")
        assert await handle(tenant, event, event) == 1  # carol only, once; never bob, the author
        async with tenant.database.directory_session() as directory:
            rows = list(
                await directory.scalars(
                    sa.select(NotificationRow).where(NotificationRow.source_id == event.message_id)
                )
            )
        assert [(r.user_id, r.kind, r.level, r.actor_id) for r in rows] == [
            (u["carol"], "DIRECT_MESSAGE", "HIGH", u["bob"])
        ]
    # A plain server's plain message still notifies no one by default.
    plain = MessageCreated(
        new_id(SHARD), tenant.channel_id, tenant.server_id, u["author"], "hi", None, datetime.now(UTC), None
    )
    assert await handle(tenant, plain) == 0


async def test_a_direct_conversation_follows_the_settings_chosen_for_it(tenant: Tenant) -> None:
    u = tenant.users
    server_id, channel_id = await direct_conversation(tenant)
    async with tenant.database.directory_session() as directory, directory.begin():
        directory.add(
            NotificationPreferenceRow(
                user_id=u["carol"], scope_id=server_id, scope="SERVER", server_id=server_id, level="NOTHING"
            )
        )
        directory.add(
            NotificationPreferenceRow(
                user_id=u["bob"],
                scope_id=channel_id,
                scope="CHANNEL",
                server_id=server_id,
                level="MENTIONS_ONLY",
            )
        )
    assert await handle(tenant, dm(tenant, server_id, channel_id, "bob", f"muted <@{u['carol']}>")) == 0
    assert await handle(tenant, dm(tenant, server_id, channel_id, "carol", "plain")) == 0
    mention = dm(tenant, server_id, channel_id, "carol", f"hey <@{u['bob']}>")
    assert await handle(tenant, mention) == 1
    assert await stored(tenant) == [(u["bob"], "MENTION", True)]


async def test_a_deleted_conversation_takes_its_notifications_along(tenant: Tenant) -> None:
    u = tenant.users
    server_id, channel_id = await direct_conversation(tenant)
    await handle(tenant, dm(tenant, server_id, channel_id, "bob", "hello"))
    await handle(tenant, dm(tenant, tenant.server_id, tenant.channel_id, "author", f"<@{u['bob']}>"))
    assert await stored(tenant) == sorted([(u["bob"], "MENTION", True), (u["carol"], "DIRECT_MESSAGE", True)])
    await handle(tenant, ServerDeleted(server_id), ServerDeleted(server_id))
    assert await stored(tenant) == [(u["bob"], "MENTION", True)]  # another server's are kept


async def test_nobody_is_notified_of_someone_they_blocked(tenant: Tenant) -> None:
    u = tenant.users
    group, group_channel = await add_server(
        tenant.database, u["bob"], [u["bob"], u["carol"], u["extra"]], kind="GROUP_DM"
    )
    async with tenant.database.directory_session() as directory, directory.begin():
        directory.add(BlockRow(blocker_id=u["carol"], blocked_id=u["bob"]))
    # In a group both stay participants; Bob's messages notify Extra, not Carol who blocked him.
    assert await handle(tenant, dm(tenant, group, group_channel, "bob", f"hello <@{u['carol']}>")) == 1
    assert await stored(tenant) == [(u["extra"], "DIRECT_MESSAGE", True)]
    # In a server too: his mention of her and his @everyone reach everyone else.
    mention = dm(tenant, tenant.server_id, tenant.channel_id, "bob", f"<@{u['carol']}> <@{u['extra']}>")
    assert await handle(tenant, mention) == 1
    everyone = replace(
        dm(tenant, tenant.server_id, tenant.channel_id, "bob", "@everyone"), mention_everyone=True
    )
    assert await handle(tenant, everyone) == 2  # the author and Extra
    # The block is one way: Carol's messages still notify Bob.
    assert await handle(tenant, dm(tenant, group, group_channel, "carol", "hi")) == 2
    assert {user for user, _kind, _pushed in await stored(tenant)} == {u["author"], u["bob"], u["extra"]}
