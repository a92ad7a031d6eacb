"""Notifications through the router: levels, settings (channel over server), snooze windows, access,
the live `notifications` subscription, pagination, mark read — and, in the full mode, a worker crash that
loses none. Notifications are made by the worker's consumer after the message commits, so tests poll;
to prove something did *not* happen they send a later message that does notify the same user (the
consumer handles a shard's events in order) and wait for that one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import (
    Users,
    create_channel,
    outcome,
    send,
    subscribe_settled,
)
from tests.integration.notification_flows import (
    DELETE_CHANNEL,
    LIVE,
    NOTIFICATIONS,
    SET,
    SETTINGS,
    SNOOZE,
    VISIBILITY,
    community,
    listed,
    live_next,
    set_level,
    snooze,
    summary,
    until_listed,
)

COUNTS = "{ notificationCounts { unread unreadHigh } }"
MARK = """mutation($i: MarkNotificationsReadInput!) { markNotificationsRead(input: $i) {
  __typename ... on NotificationsMarkedRead { marked counts { unread unreadHigh } }
  ... on UserError { code field } } }"""
DELETE = "mutation($id: ID!) { deleteMessage(id: $id) { __typename } }"


async def test_levels_follow_mentions_replies_everyone_and_settings(stack: Stack) -> None:
    server, general, people = await community(stack, "bob", "carol", "dave", "eve")
    owner, as_owner = people["owner"]
    _bob, as_bob = people["bob"]
    carol, as_carol = people["carol"]
    dave, as_dave = people["dave"]
    _eve, as_eve = people["eve"]
    other = (await create_channel(as_owner, server["id"], "other"))["id"]
    await set_level(as_bob, "ALL_MESSAGES", serverId=server["id"])  # follows everything
    # carol keeps the default (mentions only)
    await set_level(as_dave, "ALL_MESSAGES", serverId=server["id"])
    await set_level(as_dave, "NOTHING", serverId=server["id"], channelId=general)  # #general muted
    await set_level(as_eve, "NOTHING", serverId=server["id"])
    await set_level(as_eve, "ALL_MESSAGES", channelId=general)  # but #general followed

    await send(as_owner, general, "hello all")
    await send(as_owner, general, f"hi @{carol.username} and @{dave.username}")
    question = await send(as_bob, general, "a question")
    await send(as_carol, general, "an answer", replyToId=question["id"])
    await send(as_owner, general, f"talking to myself @{owner.username}")
    await send(as_owner, general, "@everyone meeting")
    # Sentinels, after all of the above in the same shard: once each is listed, the rest was handled.
    sentinels = {}
    for name, (account, _client) in people.items():
        author, where = (
            (as_bob, other) if name == "owner" else (as_owner, general if name == "eve" else other)
        )
        sentinels[name] = (await send(author, where, f"last for @{account.username}"))["id"]
    lists = {name: await until_listed(client, sentinels[name]) for name, (_a, client) in people.items()}

    def in_general(name: str) -> list[tuple[str, str, str]]:
        found = [
            n for n in lists[name] if n["channelId"] == general and n["messageId"] not in sentinels.values()
        ]
        return summary(found)

    def sentinel_of(name: str) -> dict[str, Any]:
        return next(n for n in lists[name] if n["messageId"] == sentinels[name])

    assert in_general("bob") == [
        ("MESSAGE", "LOW", "hello all"),
        ("MESSAGE", "LOW", f"hi <@{carol.user_id}> and <@{dave.user_id}>"),
        ("REPLY", "HIGH", "an answer"),  # not his own question
        ("MESSAGE", "LOW", f"talking to myself <@{owner.user_id}>"),
        ("EVERYONE", "HIGH", "@everyone meeting"),
    ]
    assert in_general("carol") == [
        ("MENTION", "HIGH", f"hi <@{carol.user_id}> and <@{dave.user_id}>"),
        ("EVERYONE", "HIGH", "@everyone meeting"),
    ]
    # #general muted: not even a mention or @everyone there; #other follows the server (all messages).
    assert in_general("dave") == []
    assert {n["channelId"] for n in lists["dave"]} == {other}
    assert [n["level"] for n in lists["dave"]].count("LOW") == 3  # the other sentinels in #other
    # The server muted, #general followed: all of #general, nothing of #other.
    assert [k for k, _level, _text in in_general("eve")] == [*["MESSAGE"] * 5, "EVERYONE"]
    assert {n["channelId"] for n in lists["eve"]} == {general}
    # Never the author: the owner's own mention and @everyone left them alone.
    assert summary(lists["owner"]) == [("MENTION", "HIGH", f"last for <@{owner.user_id}>")]
    for name in people:
        assert (sentinel_of(name)["kind"], sentinel_of(name)["level"]) == ("MENTION", "HIGH")
    mine = sentinel_of("bob")
    assert mine["actor"]["username"] == owner.username and mine["read"] is False
    assert mine["server"]["id"] == server["id"] and mine["channel"]["id"] == mine["channelId"] == other
    assert mine["message"]["id"] == mine["messageId"] == sentinels["bob"]


async def test_here_notifies_the_members_connected_now(stack: Stack) -> None:
    """@here reaches members with a live connection (presence), @everyone all of them, as on Discord."""
    _server, general, people = await community(stack, "bob", "carol")
    _owner, as_owner = people["owner"]
    _bob, as_bob = people["bob"]
    carol, as_carol = people["carol"]
    async with as_bob.subscriptions() as connection:  # bob is connected, carol is not
        live = await subscribe_settled(connection, LIVE, {})
        here = await send(as_owner, general, "@here standup in five")
        pushed = await live_next(live)
        assert (pushed["messageId"], pushed["kind"], pushed["level"]) == (here["id"], "EVERYONE", "HIGH")
        everyone = await send(as_owner, general, "@everyone release day")
        assert (await live_next(live))["messageId"] == everyone["id"]
    sentinel = await send(as_owner, general, f"last for @{carol.username}")
    assert summary(await until_listed(as_carol, sentinel["id"])) == [
        ("EVERYONE", "HIGH", "@everyone release day"),
        ("MENTION", "HIGH", f"last for <@{carol.user_id}>"),
    ]


async def test_a_channel_setting_overrides_the_server_and_shows_in_settings(stack: Stack) -> None:
    server, general, people = await community(stack, "bob")
    _bob, as_bob = people["bob"]
    await set_level(as_bob, "NOTHING", serverId=server["id"])
    settings = await set_level(as_bob, "ALL_MESSAGES", serverId=server["id"], channelId=general)
    assert settings["defaultLevel"] == "MENTIONS_ONLY"
    assert settings["servers"] == [
        {
            "serverId": server["id"],
            "level": "NOTHING",
            "effectiveLevel": "NOTHING",
            "snoozedUntil": None,
            "channels": [
                {
                    "channelId": general,
                    "level": "ALL_MESSAGES",
                    "effectiveLevel": "ALL_MESSAGES",
                    "snoozedUntil": None,
                }
            ],
        }
    ]
    # A null level inherits again: the channel row disappears, the server's applies.
    settings = await set_level(as_bob, None, channelId=general)
    assert settings["servers"][0]["channels"] == []
    settings.pop("__typename")
    assert (await as_bob.data(SETTINGS))["notificationSettings"] == settings


async def test_settings_are_refused_where_the_user_cannot_see(stack: Stack) -> None:
    server, general, people = await community(stack, "bob")
    _owner, as_owner = people["owner"]
    _stranger, as_stranger = await Users(stack).new("stranger")
    secret = (await create_channel(as_owner, server["id"], "secret"))["id"]
    await as_owner.data(VISIBILITY, {"i": {"channelId": secret, "private": True}})
    _bob, as_bob = people["bob"]

    async def set_outcome(client: GraphQLClient, **i: Any) -> tuple[str, str | None, str | None]:
        return outcome((await client.data(SET, {"i": i}))["setNotificationSetting"])

    not_found_server = ("NotFoundError", "NOT_FOUND", "serverId")
    not_found_channel = ("NotFoundError", "NOT_FOUND", "channelId")
    assert await set_outcome(as_stranger, serverId=server["id"], level="ALL_MESSAGES") == not_found_server
    assert await set_outcome(as_stranger, channelId=general, level="ALL_MESSAGES") == not_found_channel
    assert await set_outcome(as_bob, channelId=secret, level="ALL_MESSAGES") == not_found_channel
    assert await set_outcome(as_bob, level="ALL_MESSAGES") == ("ValidationError", "REQUIRED", "serverId")
    assert await set_outcome(as_bob, serverId="nope", level="NOTHING") == (
        "ValidationError",
        "INVALID_ID",
        "serverId",
    )
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    far = (datetime.now(UTC) + timedelta(days=400)).isoformat()
    for until, code in ((past, "INVALID_INPUT"), (far, "LIMIT_REACHED")):
        refused = (await as_bob.data(SNOOZE, {"i": {"until": until}}))["snoozeNotifications"]
        assert outcome(refused) == ("ValidationError", code, "until")
    hidden = (await as_bob.data(SNOOZE, {"i": {"until": None, "channelId": secret}}))["snoozeNotifications"]
    assert outcome(hidden) == not_found_channel
    assert (await as_stranger.data(SETTINGS))["notificationSettings"]["servers"] == []


async def test_a_private_channel_notifies_no_one_who_cannot_view_it(stack: Stack) -> None:
    server, general, people = await community(stack, "bob")
    _owner, as_owner = people["owner"]
    bob, as_bob = people["bob"]
    secret = (await create_channel(as_owner, server["id"], "secret"))["id"]
    await as_owner.data(VISIBILITY, {"i": {"channelId": secret, "private": True}})
    await set_level(as_bob, "ALL_MESSAGES", serverId=server["id"])
    # A raw token names bob even though @bob would not resolve there; @everyone reaches viewers only.
    await send(as_owner, secret, f"<@{bob.user_id}> psst")
    await send(as_owner, secret, "@everyone in the back room")
    await send(as_owner, secret, "just us")
    sentinel = await send(as_owner, general, f"@{bob.username} out here")
    found = await until_listed(as_bob, sentinel["id"])
    assert [(n["channelId"], n["kind"]) for n in found] == [(general, "MENTION")]
    assert found[0]["message"]["id"] == sentinel["id"] and found[0]["channel"]["id"] == general

    # Losing sight of the channel later keeps the notification but no longer resolves what it points at.
    await as_owner.data(VISIBILITY, {"i": {"channelId": general, "private": True}})
    (hidden,) = await listed(as_bob)
    assert (hidden["messageId"], hidden["message"], hidden["channel"]) == (sentinel["id"], None, None)
    assert hidden["server"]["id"] == server["id"]


async def test_snooze_stores_without_pushing_and_pushes_again_after_the_window(stack: Stack) -> None:
    server, general, people = await community(stack, "carol")
    _owner, as_owner = people["owner"]
    carol, as_carol = people["carol"]
    async with as_carol.subscriptions() as connection:
        live = await subscribe_settled(connection, LIVE, {})
        pushed = await send(as_owner, general, f"@{carol.username} one")
        note = await live_next(live)
        assert (note["kind"], note["level"], note["messageId"], note["read"]) == (
            "MENTION",
            "HIGH",
            pushed["id"],
            False,
        )
        assert note["message"]["content"] == f"<@{carol.user_id}> one"
        assert note["actor"]["username"] == people["owner"][0].username

        # A channel snooze: stored, counted, not pushed; after its window, pushed again.
        window = datetime.now(UTC) + timedelta(seconds=4)
        settings = await snooze(as_carol, window, channelId=general)
        assert settings["servers"][0]["channels"][0]["snoozedUntil"] is not None
        held = await send(as_owner, general, f"@{carol.username} two")
        await until_listed(as_carol, held["id"])
        await live.expect_nothing(within=1.0)
        assert (await as_carol.data(COUNTS))["notificationCounts"] == {"unread": 2, "unreadHigh": 2}
        await asyncio.sleep(max(0.0, (window - datetime.now(UTC)).total_seconds()) + 0.2)
        after = await send(as_owner, general, f"@{carol.username} three")
        assert (await live_next(live))["messageId"] == after["id"]

        # Global and server snoozes, ended by hand (until: null).
        for scope in ({}, {"serverId": server["id"]}):
            settings = await snooze(as_carol, datetime.now(UTC) + timedelta(hours=1), **scope)
            snoozed = settings["snoozedUntil"] if not scope else settings["servers"][0]["snoozedUntil"]
            assert snoozed is not None
            quiet = await send(as_owner, general, f"@{carol.username} quiet {len(scope)}")
            await until_listed(as_carol, quiet["id"])
            await live.expect_nothing(within=1.0)
            await snooze(as_carol, None, **scope)
            loud = await send(as_owner, general, f"@{carol.username} loud {len(scope)}")
            assert (await live_next(live))["messageId"] == loud["id"]
        await live.expect_nothing(within=0.5)
    assert len(await listed(as_carol)) == 7  # everything was stored


async def test_the_live_stream_carries_only_my_notifications(stack: Stack) -> None:
    _server, general, people = await community(stack, "bob", "carol")
    _owner, as_owner = people["owner"]
    bob, as_bob = people["bob"]
    carol, as_carol = people["carol"]
    async with as_bob.subscriptions() as bob_conn, as_carol.subscriptions() as carol_conn:
        bob_live = await subscribe_settled(bob_conn, LIVE, {})
        carol_live = await subscribe_settled(carol_conn, LIVE, {})
        for_carol = await send(as_owner, general, f"@{carol.username} hi")
        for_bob = await send(as_owner, general, f"@{bob.username} hi")
        assert (await live_next(carol_live))["messageId"] == for_carol["id"]
        assert (await live_next(bob_live))["messageId"] == for_bob["id"]
        await bob_live.expect_nothing(within=0.5)
        await carol_live.expect_nothing(within=0.5)
    async with GraphQLClient(as_bob.url).subscriptions() as anonymous:
        refused = await anonymous.subscribe(LIVE, {})
        message = await refused.next()
        assert message["type"] in ("error", "next"), message
        errors = message["payload"] if message["type"] == "error" else message["payload"].get("errors")
        assert errors and errors[0]["extensions"]["code"] == "UNAUTHENTICATED", message


async def test_pages_counts_mark_read_and_deleted_messages(stack: Stack) -> None:
    _server, general, people = await community(stack, "carol")
    _owner, as_owner = people["owner"]
    carol, as_carol = people["carol"]
    _mallory, as_mallory = await Users(stack).new("mallory")
    sent = [await send(as_owner, general, f"@{carol.username} n{i}") for i in range(5)]
    await until_listed(as_carol, sent[-1]["id"])

    first = (await as_carol.data(NOTIFICATIONS, {"first": 2}))["notifications"]
    assert [e["node"]["messageId"] for e in first["edges"]] == [sent[4]["id"], sent[3]["id"]]
    assert first["pageInfo"]["hasNextPage"] is True and first["pageInfo"]["hasPreviousPage"] is False
    second = await as_carol.data(NOTIFICATIONS, {"first": 2, "after": first["pageInfo"]["endCursor"]})
    second = second["notifications"]
    assert [e["node"]["messageId"] for e in second["edges"]] == [sent[2]["id"], sent[1]["id"]]
    third = await as_carol.data(NOTIFICATIONS, {"first": 2, "after": second["pageInfo"]["endCursor"]})
    assert [e["node"]["messageId"] for e in third["notifications"]["edges"]] == [sent[0]["id"]]
    assert third["notifications"]["pageInfo"]["hasNextPage"] is False

    ids = [n["id"] for n in await listed(as_carol)]
    # Someone else's ids mark nothing.
    foreign = (await as_mallory.data(MARK, {"i": {"ids": ids[:2]}}))["markNotificationsRead"]
    assert foreign["marked"] == 0
    marked = (await as_carol.data(MARK, {"i": {"ids": ids[:2]}}))["markNotificationsRead"]
    assert marked == {
        "__typename": "NotificationsMarkedRead",
        "marked": 2,
        "counts": {"unread": 3, "unreadHigh": 3},
    }
    unread = await listed(as_carol, unread=True)
    assert [n["id"] for n in unread] == ids[2:]
    assert [n["read"] for n in await listed(as_carol)] == [True, True, False, False, False]

    for bad, expected in (
        ({}, ("ValidationError", "REQUIRED", "ids")),
        ({"ids": ids[:1], "all": True}, ("ValidationError", "REQUIRED", "ids")),
        ({"ids": [ids[0]] * 101}, ("ValidationError", "LIMIT_REACHED", "ids")),
        ({"ids": ["x"]}, ("ValidationError", "INVALID_ID", "ids")),
    ):
        assert outcome((await as_carol.data(MARK, {"i": bad}))["markNotificationsRead"]) == expected

    # A deleted message takes its notification along.
    deleted = await as_owner.data(DELETE, {"id": sent[0]["id"]})
    assert deleted["deleteMessage"]["__typename"] == "MessageDeleted"
    sentinel = await send(as_owner, general, f"@{carol.username} after the deletion")
    remaining = await until_listed(as_carol, sentinel["id"])
    assert sent[0]["id"] not in [n["messageId"] for n in remaining]

    everything = (await as_carol.data(MARK, {"i": {"all": True}}))["markNotificationsRead"]
    assert everything["marked"] == 3 and everything["counts"] == {"unread": 0, "unreadHigh": 0}
    result = await as_carol.execute(NOTIFICATIONS, {"first": 0})
    assert result.codes == ["BAD_USER_INPUT"]


async def test_a_deleted_channel_takes_its_notifications_and_settings_along(stack: Stack) -> None:
    server, general, people = await community(stack, "carol")
    owner, as_owner = people["owner"]
    _carol, as_carol = people["carol"]
    doomed = await create_channel(as_owner, server["id"], "doomed")
    folder = await create_channel(as_owner, server["id"], "Archive", kind="FOLDER")
    inside = await create_channel(as_owner, server["id"], "old", parentId=folder["id"])
    await set_level(as_owner, "ALL_MESSAGES", channelId=doomed["id"])
    await set_level(as_owner, "MENTIONS_ONLY", channelId=inside["id"])
    await set_level(as_owner, "ALL_MESSAGES", channelId=general)
    in_doomed = await send(as_carol, doomed["id"], f"@{owner.username} in a channel about to go")
    in_folder = await send(as_carol, inside["id"], f"@{owner.username} in a folder about to go")
    kept = await send(as_carol, general, f"@{owner.username} in a channel that stays")
    before = await until_listed(as_owner, kept["id"])
    assert [n["messageId"] for n in before] == [kept["id"], in_folder["id"], in_doomed["id"]]
    configured = (await as_owner.data(SETTINGS))["notificationSettings"]["servers"][0]["channels"]
    assert {c["channelId"] for c in configured} == {doomed["id"], inside["id"], general}

    for channel in (doomed, folder):  # the folder takes its channel along
        deleted = await as_owner.data(DELETE_CHANNEL, {"id": channel["id"]})
        assert deleted["deleteChannel"]["__typename"] == "ChannelDeleted", deleted
    # Listing at once (the consumer may not have run yet) answers without errors: what is gone resolves
    # to null, never to a crash.
    for notification in await listed(as_owner):
        if notification["messageId"] in (in_doomed["id"], in_folder["id"]):
            assert notification["channel"] is None and notification["message"] is None, notification
        else:
            assert notification["channel"] == {"id": general}, notification

    sentinel = await send(as_carol, general, f"@{owner.username} after the deletions")
    after = await until_listed(as_owner, sentinel["id"])  # the consumer handled the deletions before it
    assert [n["messageId"] for n in after] == [sentinel["id"], kept["id"]]
    assert all(n["channel"] == {"id": general} and n["message"] and n["server"] for n in after), after
    counts = (await as_owner.data(COUNTS))["notificationCounts"]
    assert counts == {"unread": 2, "unreadHigh": 2}
    # The deleted channels' settings went too; the surviving channel's stays.
    configured = (await as_owner.data(SETTINGS))["notificationSettings"]["servers"][0]["channels"]
    assert [c["channelId"] for c in configured] == [general]


@pytest.mark.full
async def test_a_worker_crash_loses_no_notification(full_stack: Stack) -> None:
    _server, general, people = await community(full_stack, "carol")
    _owner, as_owner = people["owner"]
    carol, as_carol = people["carol"]
    async with as_carol.subscriptions() as connection:
        live = await subscribe_settled(connection, LIVE, {})
        before = await send(as_owner, general, f"@{carol.username} before")
        assert (await live_next(live))["messageId"] == before["id"]

        full_stack.kill("worker")
        sent = [(await send(as_owner, general, f"@{carol.username} while down {i}"))["id"] for i in range(10)]
        await live.expect_nothing(within=1.5)  # committed; nobody consumes the outbox yet
        assert len(await listed(as_carol)) == 1
        full_stack.restart_worker()
        delivered = [(await live_next(live, timeout=30))["messageId"] for _ in sent]
        await live.expect_nothing(within=1.0)
    assert delivered == sent
    stored = [n["messageId"] for n in await listed(as_carol)]
    assert stored == [*reversed(sent), before["id"]]  # each once
