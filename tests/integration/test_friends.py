"""Friends through the router: requests both ways, simultaneous requests, blocking, live friendEvents."""

from __future__ import annotations

import asyncio

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import (
    Users,
    accept,
    create_channel,
    create_server,
    invite,
    outcome,
    send,
    subscribe_settled,
)
from tests.integration.friend_flows import (
    ACCEPT,
    BLOCK,
    CANCEL,
    DECLINE,
    ERRORS,
    REMOVE,
    SEND_REQUEST,
    befriend,
    request,
)

UNBLOCK = f"""mutation($u: ID!) {{ unblockUser(userId: $u) {{ __typename
  ... on BlockChange {{ userId blocked }} {ERRORS} }} }}"""
INCOMING = """{ incomingFriendRequests { id direction createdAt
  user { id username displayName avatarUrl } } }"""
OUTGOING = "{ outgoingFriendRequests { id direction user { id username } } }"
FRIENDS = "{ friends { id username connectionStatus } }"
BLOCKED = "{ blockedUsers { id } }"
HISTORY = "query($c: ID!) { messages(channelId: $c) { edges { node { content authorBlocked } } } }"
FRIEND_EVENTS = """subscription { friendEvents { kind user { id username } requestId conversationId } }"""


async def friend_ids(client: GraphQLClient) -> list[str]:
    return [f["id"] for f in (await client.data(FRIENDS))["friends"]]


async def test_request_lifecycle_both_ways_with_live_events(stack: Stack) -> None:
    users = Users(stack)
    ann, as_ann = await users.new("ann")
    bob, as_bob = await users.new("bob")
    _carol, as_carol = await users.new("car")

    async with (
        as_bob.subscriptions() as bob_live,
        as_ann.subscriptions() as ann_live,
        as_carol.subscriptions() as carol_live,
    ):
        bob_events = await subscribe_settled(bob_live, FRIEND_EVENTS, {})
        ann_events = await subscribe_settled(ann_live, FRIEND_EVENTS, {})
        carol_events = await subscribe_settled(carol_live, FRIEND_EVENTS, {})

        # Ann asks Bob (any case of his username); both see it, Bob with Ann's identity.
        sent = await request(as_ann, bob.username.upper())
        assert sent["__typename"] == "FriendRequest" and sent["direction"] == "OUTGOING"
        assert sent["user"] == {"id": bob.user_id, "username": bob.username}
        received = (await bob_events.next())["payload"]["data"]["friendEvents"]
        assert received == {
            "kind": "REQUEST_RECEIVED",
            "user": {"id": ann.user_id, "username": ann.username},
            "requestId": sent["id"],
            "conversationId": None,
        }
        assert (await ann_events.next())["payload"]["data"]["friendEvents"]["kind"] == "REQUEST_SENT"

        incoming = (await as_bob.data(INCOMING))["incomingFriendRequests"]
        assert len(incoming) == 1 and incoming[0]["id"] == sent["id"]
        assert incoming[0]["direction"] == "INCOMING"
        assert incoming[0]["user"] == {
            "id": ann.user_id,
            "username": ann.username,
            "displayName": "Test Ann",
            "avatarUrl": None,
        }
        assert [r["id"] for r in (await as_ann.data(OUTGOING))["outgoingFriendRequests"]] == [sent["id"]]
        assert (await as_ann.data(INCOMING))["incomingFriendRequests"] == []
        assert (await as_carol.data(INCOMING))["incomingFriendRequests"] == []

        # Typed refusals: again, unknown, self; nobody else may answer or cancel it.
        assert outcome(await request(as_ann, bob.username)) == ("ConflictError", "ALREADY_EXISTS", "username")
        assert outcome(await request(as_ann, "nobody_by_that_name")) == (
            "NotFoundError",
            "NOT_FOUND",
            "username",
        )
        assert outcome(await request(as_ann, ann.username)) == (
            "ValidationError",
            "INVALID_INPUT",
            "username",
        )
        for client, mutation, field in (
            (as_carol, ACCEPT, "acceptFriendRequest"),
            (as_ann, ACCEPT, "acceptFriendRequest"),
            (as_bob, CANCEL, "cancelFriendRequest"),
            (as_carol, DECLINE, "declineFriendRequest"),
        ):
            refused = (await client.data(mutation, {"i": sent["id"]}))[field]
            assert outcome(refused) == ("NotFoundError", "NOT_FOUND", "id"), (mutation, refused)
        bad = (await as_bob.data(ACCEPT, {"i": "not-an-id"}))["acceptFriendRequest"]
        assert outcome(bad) == ("ValidationError", "INVALID_ID", "id")

        # Bob declines; both are told; then Bob asks Ann, who accepts.
        declined = (await as_bob.data(DECLINE, {"i": sent["id"]}))["declineFriendRequest"]
        assert declined == {"__typename": "FriendRequestRemoved", "requestId": sent["id"]}
        assert (await ann_events.next())["payload"]["data"]["friendEvents"]["kind"] == "REQUEST_DECLINED"
        assert (await bob_events.next())["payload"]["data"]["friendEvents"]["kind"] == "REQUEST_DECLINED"
        assert (await as_ann.data(OUTGOING))["outgoingFriendRequests"] == []

        back = await request(as_bob, ann.username)
        assert back["__typename"] == "FriendRequest"
        assert (await ann_events.next())["payload"]["data"]["friendEvents"]["kind"] == "REQUEST_RECEIVED"
        assert (await bob_events.next())["payload"]["data"]["friendEvents"]["kind"] == "REQUEST_SENT"
        accepted = (await as_ann.data(ACCEPT, {"i": back["id"]}))["acceptFriendRequest"]
        assert accepted == {"__typename": "Friendship", "user": {"id": bob.user_id}}
        added = (await bob_events.next())["payload"]["data"]["friendEvents"]
        assert added["kind"] == "FRIEND_ADDED" and added["user"]["id"] == ann.user_id
        assert (await ann_events.next())["payload"]["data"]["friendEvents"]["kind"] == "FRIEND_ADDED"

        # Friends see each other with a connection status (Bob has a live connection open).
        assert (await as_ann.data(FRIENDS))["friends"] == [
            {"id": bob.user_id, "username": bob.username, "connectionStatus": "CONNECTED"}
        ]
        assert await friend_ids(as_bob) == [ann.user_id]
        assert outcome(await request(as_ann, bob.username)) == (
            "ConflictError",
            "ALREADY_FRIENDS",
            "username",
        )

        # Carol's request to Ann is cancelled by Carol: Ann's stream says so; Carol's own stream is hers.
        to_ann = await request(as_carol, ann.username)
        assert (await ann_events.next())["payload"]["data"]["friendEvents"]["kind"] == "REQUEST_RECEIVED"
        # Carol's stream is hers alone: nothing of Ann's and Bob's before, only her own request now.
        own = (await carol_events.next())["payload"]["data"]["friendEvents"]
        assert (own["kind"], own["user"]["id"], own["requestId"]) == (
            "REQUEST_SENT",
            ann.user_id,
            to_ann["id"],
        )
        cancelled = (await as_carol.data(CANCEL, {"i": to_ann["id"]}))["cancelFriendRequest"]
        assert cancelled["__typename"] == "FriendRequestRemoved"
        assert (await ann_events.next())["payload"]["data"]["friendEvents"]["kind"] == "REQUEST_CANCELLED"

        # Removal: both are told, neither lists the other any more.
        removed = (await as_bob.data(REMOVE, {"u": ann.user_id}))["removeFriend"]
        assert removed == {"__typename": "FriendRemoved", "userId": ann.user_id}
        assert (await ann_events.next())["payload"]["data"]["friendEvents"]["kind"] == "FRIEND_REMOVED"
        assert (await bob_events.next())["payload"]["data"]["friendEvents"]["kind"] == "FRIEND_REMOVED"
        assert await friend_ids(as_ann) == [] and await friend_ids(as_bob) == []
        again = (await as_bob.data(REMOVE, {"u": ann.user_id}))["removeFriend"]
        assert outcome(again) == ("NotFoundError", "NOT_FRIENDS", "userId")
        assert (await carol_events.next())["payload"]["data"]["friendEvents"]["kind"] == "REQUEST_CANCELLED"
        await carol_events.expect_nothing(1.0)  # not Ann's and Bob's removal
        await bob_events.expect_nothing(0.5)  # nor Carol's request to Ann


async def test_simultaneous_requests_become_one_friendship(stack: Stack) -> None:
    users = Users(stack)
    for round_ in range(3):
        ann, as_ann = await users.new(f"s{round_}a")
        bob, as_bob = await users.new(f"s{round_}b")
        results = await asyncio.gather(request(as_ann, bob.username), request(as_bob, ann.username))
        kinds = sorted(r["__typename"] for r in results)
        assert kinds == ["FriendRequest", "Friendship"], results  # the second met the first
        assert await friend_ids(as_ann) == [bob.user_id]
        assert await friend_ids(as_bob) == [ann.user_id]
        for client in (as_ann, as_bob):
            assert (await client.data(INCOMING))["incomingFriendRequests"] == []
            assert (await client.data(OUTGOING))["outgoingFriendRequests"] == []


async def test_blocking_stops_requests_both_ways_and_ends_the_friendship(stack: Stack) -> None:
    (ann, as_ann), (bob, as_bob) = await befriend(stack, "blk")
    users = Users(stack)
    carol, as_carol = await users.new("blkc")
    pending = await request(as_carol, ann.username)

    assert outcome((await as_ann.data(BLOCK, {"u": ann.user_id}))["blockUser"]) == (
        "ValidationError",
        "INVALID_INPUT",
        "userId",
    )
    unknown = str(int(carol.user_id) + 1)
    assert outcome((await as_ann.data(BLOCK, {"u": unknown}))["blockUser"]) == (
        "NotFoundError",
        "NOT_FOUND",
        "userId",
    )

    blocked = (await as_ann.data(BLOCK, {"u": bob.user_id}))["blockUser"]
    assert blocked == {"__typename": "BlockChange", "userId": bob.user_id, "blocked": True}
    assert (await as_ann.data(BLOCK, {"u": bob.user_id}))["blockUser"][
        "__typename"
    ] == "BlockChange"  # idempotent
    assert await friend_ids(as_ann) == [] and await friend_ids(as_bob) == []
    assert (await as_ann.data(BLOCKED))["blockedUsers"] == [{"id": bob.user_id}]
    assert (await as_bob.data(BLOCKED))["blockedUsers"] == []

    # No requests either way: the blocker is told why, the blocked user gets "no such user".
    assert outcome(await request(as_ann, bob.username)) == ("PermissionError", "BLOCKED", "username")
    assert outcome(await request(as_bob, ann.username)) == ("NotFoundError", "NOT_FOUND", "username")

    # Blocking someone with a pending request removes it.
    assert (await as_ann.data(BLOCK, {"u": carol.user_id}))["blockUser"]["__typename"] == "BlockChange"
    assert (await as_ann.data(INCOMING))["incomingFriendRequests"] == []
    assert (await as_carol.data(OUTGOING))["outgoingFriendRequests"] == []
    refused = (await as_ann.data(ACCEPT, {"i": pending["id"]}))["acceptFriendRequest"]
    assert outcome(refused) == ("NotFoundError", "NOT_FOUND", "id")

    assert (await as_ann.data(UNBLOCK, {"u": carol.user_id}))["unblockUser"]["blocked"] is False

    # In a server they share, Bob's messages are flagged for Ann (and only for her) while she blocks him.
    server = await create_server(as_carol, "Shared", "PRIVATE")
    channel = await create_channel(as_carol, server["id"], "talk")
    code = (await invite(as_carol, server["id"]))["inviteCode"]
    for client in (as_ann, as_bob):
        assert (await accept(client, code))["__typename"] == "Server"
    await send(as_bob, channel["id"], "from Bob")
    await send(as_carol, channel["id"], "from Carol")

    async def flags(client: GraphQLClient) -> list[tuple[str, bool]]:
        page = (await client.data(HISTORY, {"c": channel["id"]}))["messages"]["edges"]
        return [(e["node"]["content"], e["node"]["authorBlocked"]) for e in page]

    assert await flags(as_ann) == [("from Carol", False), ("from Bob", True)]
    assert await flags(as_carol) == [("from Carol", False), ("from Bob", False)]
    assert await flags(as_bob) == [("from Carol", False), ("from Bob", False)]

    # Unblocking allows requests again (and is refused for someone not blocked).
    assert (await as_ann.data(UNBLOCK, {"u": bob.user_id}))["unblockUser"] == {
        "__typename": "BlockChange",
        "userId": bob.user_id,
        "blocked": False,
    }
    assert outcome((await as_ann.data(UNBLOCK, {"u": bob.user_id}))["unblockUser"]) == (
        "NotFoundError",
        "NOT_FOUND",
        "userId",
    )
    assert (await request(as_bob, ann.username))["__typename"] == "FriendRequest"
    assert await flags(as_ann) == [("from Carol", False), ("from Bob", False)]


async def test_friend_events_need_a_signed_in_user(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    async with anonymous.subscriptions({}) as connection:
        operation = await connection.subscribe(FRIEND_EVENTS, {})
        message = await operation.next()
        errors = message["payload"] if message["type"] == "error" else message["payload"].get("errors")
        assert errors and errors[0]["extensions"]["code"] == "UNAUTHENTICATED", message
    result = await anonymous.execute(INCOMING)
    assert "UNAUTHENTICATED" in result.codes


async def test_friend_requests_are_rate_limited(stack: Stack) -> None:
    _spammer, as_spammer = await Users(stack).new("spam")
    for i in range(30):  # every attempt counts, found or not
        assert outcome(await request(as_spammer, f"nobody_{i}")) == ("NotFoundError", "NOT_FOUND", "username")
    limited = await as_spammer.execute(SEND_REQUEST, {"u": "nobody_else"})
    assert limited.codes == ["RATE_LIMITED"], limited
    assert limited.errors[0]["extensions"]["retryAfter"] > 0
