"""Friend requests and direct messages in the notification list, through the router on both stacks.

A friend request notifies its recipient (FRIEND_REQUEST, HIGH, with the asker's public identity and never
an e-mail), live unless they snoozed everything (then stored without a push); an accepted request notifies
the asker (FRIEND_ACCEPTED); a declined, cancelled or blocked request takes its notification along, and a
block keeps any notification from coming. In a direct conversation every message of the other notifies at
HIGH by default, never one's own, and a setting of NOTHING on it silences it. Notifications are made by the
worker's consumer after the commit, so tests poll; to prove something did not happen they wait for a later
event of the same store that does notify (the consumer handles a store's events in order)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import Users, send, subscribe_settled
from tests.integration.friend_flows import ACCEPT, BLOCK, CANCEL, DECLINE, REMOVE, befriend, open_dm, request
from tests.integration.notification_flows import SETTINGS, live_next, set_level, snooze

NODE = """id kind level read serverId channelId messageId friendRequestId
  actor { id username displayName avatarUrl email } message { id content }"""
NOTIFICATIONS = f"""query {{ notifications(first: 100) {{ edges {{ node {{ {NODE} }} }} }} }}"""
LIVE = f"subscription {{ notifications {{ {NODE} }} }}"
COUNTS = "{ notificationCounts { unread unreadHigh } }"


async def listed(client: GraphQLClient) -> tuple[list[dict[str, Any]], str]:
    """The notifications, newest first, and the raw response (to look for what must not be in it)."""
    result = await client.execute(NOTIFICATIONS)
    assert not result.errors and result.data is not None, result.errors
    return [e["node"] for e in result.data["notifications"]["edges"]], json.dumps(result.data)


async def until(
    client: GraphQLClient, found: Callable[[list[dict[str, Any]]], bool], *, timeout: float = 20
) -> list[dict[str, Any]]:
    """The user's notifications once `found` holds of them (the consumer runs after the commit)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        notifications, _raw = await listed(client)
        if found(notifications):
            return notifications
        assert asyncio.get_running_loop().time() < deadline, f"never came true: {notifications}"
        await asyncio.sleep(0.2)


def about(request_id: str, kind: str = "FRIEND_REQUEST") -> Callable[[list[dict[str, Any]]], bool]:
    return lambda ns: any(n["friendRequestId"] == request_id and n["kind"] == kind for n in ns)


def gone(request_id: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda ns: not any(n["friendRequestId"] == request_id for n in ns)


def of_message(message_id: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda ns: any(n["messageId"] == message_id for n in ns)


async def test_a_friend_request_notifies_live_with_the_askers_identity_and_acceptance_notifies_back(
    stack: Stack,
) -> None:
    users = Users(stack)
    ann, as_ann = await users.new("fna")
    bob, as_bob = await users.new("fnb")
    async with as_bob.subscriptions() as bob_live:
        live = await subscribe_settled(bob_live, LIVE, {})
        sent = await request(as_ann, bob.username)
        assert sent["__typename"] == "FriendRequest", sent
        message = await live.next(20)
        assert message["type"] == "next" and "errors" not in message["payload"], message
        assert ann.email not in json.dumps(message)
        pushed = message["payload"]["data"]["notifications"]
    identity = {
        "id": ann.user_id,
        "username": ann.username,
        "displayName": pushed["actor"]["displayName"],
        "avatarUrl": pushed["actor"]["avatarUrl"],
        "email": None,  # never anyone else's
    }
    assert pushed["actor"] == identity and pushed["actor"]["displayName"], pushed
    assert (pushed["kind"], pushed["level"], pushed["read"], pushed["friendRequestId"]) == (
        "FRIEND_REQUEST",
        "HIGH",
        False,
        sent["id"],
    )
    assert (pushed["serverId"], pushed["channelId"], pushed["messageId"], pushed["message"]) == (None,) * 4

    # Listed (the same one) with the others, and counted as unread HIGH; still no e-mail in the answer.
    notifications, raw = await listed(as_bob)
    assert [(n["id"], n["kind"], n["actor"]) for n in notifications] == [
        (pushed["id"], "FRIEND_REQUEST", identity)
    ]
    assert ann.email not in raw and bob.email not in raw
    assert (await as_bob.data(COUNTS))["notificationCounts"] == {"unread": 1, "unreadHigh": 1}
    # The asker is not notified of their own request.
    assert (await listed(as_ann))[0] == []

    # Bob accepts: Ann is told, by Bob; Bob's notification of the request stays (his history).
    accepted = (await as_bob.data(ACCEPT, {"i": sent["id"]}))["acceptFriendRequest"]
    assert accepted["__typename"] == "Friendship", accepted
    found = await until(as_ann, about(sent["id"], "FRIEND_ACCEPTED"))
    assert [(n["kind"], n["level"], n["actor"]["id"], n["actor"]["email"]) for n in found] == [
        ("FRIEND_ACCEPTED", "HIGH", bob.user_id, None)
    ]
    notifications, raw = await listed(as_bob)
    assert [n["kind"] for n in notifications] == ["FRIEND_REQUEST"] and ann.email not in raw


async def test_a_global_snooze_stores_friend_requests_without_pushing_them(stack: Stack) -> None:
    users = Users(stack)
    _ann, as_ann = await users.new("fsa")
    bob, as_bob = await users.new("fsb")
    carol, as_carol = await users.new("fsc")
    await snooze(as_bob, datetime.now(UTC) + timedelta(hours=1))
    async with as_bob.subscriptions() as bob_live:
        live = await subscribe_settled(bob_live, LIVE, {})
        held = await request(as_ann, bob.username)
        stored = await until(as_bob, about(held["id"]))
        assert [n["kind"] for n in stored] == ["FRIEND_REQUEST"]
        assert (await as_bob.data(COUNTS))["notificationCounts"] == {"unread": 1, "unreadHigh": 1}
        # The snooze over, the next one is pushed: the first thing the stream delivers.
        await snooze(as_bob, None)
        later = await request(as_carol, bob.username)
        pushed = await live_next(live)
        assert (pushed["friendRequestId"], pushed["actor"]["username"]) == (later["id"], carol.username)


async def test_answered_requests_take_their_notification_along_and_blocks_tell_nothing(stack: Stack) -> None:
    users = Users(stack)
    bob, as_bob = await users.new("fbb")
    asking = {name: await users.new(name) for name in ("fba", "fbc", "fbd", "fbe")}

    async def asked(name: str) -> str:
        sent = await request(asking[name][1], bob.username)
        assert sent["__typename"] == "FriendRequest", sent
        await until(as_bob, about(sent["id"]))
        return str(sent["id"])

    cancelled = await asked("fba")
    assert (await asking["fba"][1].data(CANCEL, {"i": cancelled}))["cancelFriendRequest"]["__typename"] == (
        "FriendRequestRemoved"
    )
    await until(as_bob, gone(cancelled))
    declined = await asked("fbc")
    assert (await as_bob.data(DECLINE, {"i": declined}))["declineFriendRequest"]["__typename"] == (
        "FriendRequestRemoved"
    )
    await until(as_bob, gone(declined))
    # Bob blocks an asker: the request and its notification go.
    blocked_by_bob = await asked("fbd")
    dave = asking["fbd"][0]
    assert (await as_bob.data(BLOCK, {"u": dave.user_id}))["blockUser"]["__typename"] == "BlockChange"
    await until(as_bob, gone(blocked_by_bob))
    # An asker blocks Bob: Bob no longer sees their request either.
    erin, as_erin = asking["fbe"]
    blocked_bob = await asked("fbe")
    assert (await as_erin.data(BLOCK, {"u": bob.user_id}))["blockUser"]["__typename"] == "BlockChange"
    await until(as_bob, gone(blocked_bob))
    assert (await listed(as_bob))[0] == []

    # Bob, blocked, cannot ask Erin (told "not found"), so Erin is told nothing: once a later request
    # from someone else is listed, none from Bob was made before it.
    refused = await request(as_bob, erin.username)
    assert (refused["__typename"], refused["code"]) == ("NotFoundError", "NOT_FOUND"), refused
    refused = await request(as_bob, dave.username)  # Bob blocked Dave: a typed refusal
    assert refused["code"] == "BLOCKED", refused
    later = await request(asking["fba"][1], erin.username)
    found = await until(as_erin, about(later["id"]))
    assert [n["actor"]["id"] for n in found] == [asking["fba"][0].user_id]
    assert bob.user_id not in (await listed(as_erin))[1]
    assert (await listed(asking["fbd"][1]))[0] == []  # Dave: nothing about Bob either


async def test_direct_messages_notify_the_other_at_high_unless_muted(stack: Stack) -> None:
    (ann, as_ann), (bob, as_bob) = await befriend(stack, "fdm")
    conversation = await open_dm(as_ann, bob.user_id)
    server, channel = conversation["server"]["id"], conversation["channel"]["id"]
    await until(as_ann, lambda ns: any(n["kind"] == "FRIEND_ACCEPTED" for n in ns))

    first = await send(as_ann, channel, "hello Bob")
    reply = await send(as_bob, channel, "hi Ann")
    for_bob = await until(as_bob, of_message(first["id"]))
    assert [(n["kind"], n["level"], n["actor"]["id"], n["message"]) for n in for_bob if n["messageId"]] == [
        ("DIRECT_MESSAGE", "HIGH", ann.user_id, {"id": first["id"], "content": "hello Bob"})
    ]
    assert for_bob[0]["serverId"] == server and for_bob[0]["channelId"] == channel
    # Ann's list has Bob's message once it is handled, and never her own (handled before it).
    for_ann = await until(as_ann, of_message(reply["id"]))
    assert [(n["kind"], n["messageId"]) for n in for_ann if n["messageId"]] == [
        ("DIRECT_MESSAGE", reply["id"])
    ]

    # The conversation's default shows as ALL_MESSAGES; Bob mutes it: nothing more, mentions included.
    snoozed = await snooze(as_ann, datetime.now(UTC) + timedelta(minutes=5), serverId=server)
    assert [(s["serverId"], s["level"], s["effectiveLevel"]) for s in snoozed["servers"]] == [
        (server, None, "ALL_MESSAGES")
    ]
    await snooze(as_ann, None, serverId=server)
    muted = await set_level(as_bob, "NOTHING", serverId=server)
    assert [(s["serverId"], s["effectiveLevel"]) for s in muted["servers"]] == [(server, "NOTHING")]
    quiet = await send(as_ann, channel, f"are you there @{bob.username}")
    sentinel = await send(as_bob, channel, "(muted you)")
    await until(as_ann, of_message(sentinel["id"]))
    notifications, _raw = await listed(as_bob)
    assert quiet["id"] not in [n["messageId"] for n in notifications]
    assert [n["messageId"] for n in notifications if n["messageId"]] == [first["id"]]
    settings = (await as_bob.data(SETTINGS))["notificationSettings"]
    assert settings["defaultLevel"] == "MENTIONS_ONLY"

    # The friendship ends: the conversation is erased, and its notifications with it, for both.
    removed = (await as_bob.data(REMOVE, {"u": ann.user_id}))["removeFriend"]
    assert removed["__typename"] == "FriendRemoved", removed
    for client in (as_ann, as_bob):
        left = await until(client, lambda ns: not any(n["serverId"] == server for n in ns))
        assert all(n["kind"] in ("FRIEND_REQUEST", "FRIEND_ACCEPTED") for n in left), left
