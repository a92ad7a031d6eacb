"""Direct conversations through the router: opened once, used with the normal messages API, private to the
two friends, never listed as servers, and erased from every store with the friendship."""

from __future__ import annotations

import asyncio

import subgraphs.channels.models
import subgraphs.messages.models
import subgraphs.servers.models
import subgraphs.webhooks.models  # noqa: F401 - every tenant table in ShardBase.metadata
from tests.harness.stack import Stack
from tests.integration.attachment_flows import get, png, send_files
from tests.integration.flows import (
    CREATE_CHANNEL,
    CREATE_ROLE,
    DISCOVER,
    MY_SERVERS,
    Users,
    outcome,
    send,
    stream_error_code,
    subscribe_settled,
)
from tests.integration.friend_flows import BLOCK, ERRORS, REMOVE, _leftovers, befriend, open_dm

CONVERSATIONS = (
    """{ directConversations { id user { id } lastMessage { id content } unreadCount mentionCount } }"""
)
EVENTS = """subscription($c: ID!) { messageEvents(channelId: $c) { __typename
  ... on MessageCreated { message { id content replyTo { id } author { id } } }
  ... on ReactionChanged { messageId emoji added } } }"""
REACT = """mutation($m: ID!, $e: String!) { addReaction(messageId: $m, emoji: $e) { __typename } }"""
PIN = """mutation($m: ID!) { pinMessage(id: $m) { __typename } }"""
HISTORY = """query($c: ID!) { messages(channelId: $c) { edges { node { id content
  reactions { emoji count } pinnedAt } } } }"""
MESSAGE = "query($m: ID!) { message(id: $m) { id } }"
CHANNEL = "query($c: ID!) { channel(id: $c) { id } }"
SERVER = "query($s: ID!) { server(id: $s) { id } }"
MARK_READ = """mutation($c: ID!) { markRead(channelId: $c) { __typename } }"""
SEND = f"""mutation($i: SendMessageInput!) {{ sendMessage(input: $i) {{ __typename ... on Message {{ id }}
  {ERRORS} }} }}"""


async def test_a_direct_conversation_is_a_private_channel_with_every_message_feature(stack: Stack) -> None:
    (ann, as_ann), (bob, as_bob) = await befriend(stack, "dm")
    carol, as_carol = await Users(stack).new("dmc")

    # Opened by both at once: one conversation.
    first, second = await asyncio.gather(open_dm(as_ann, bob.user_id), open_dm(as_bob, ann.user_id))
    assert first["__typename"] == "DirectConversation" and first["id"] == second["id"], (first, second)
    assert first["user"] == {"id": bob.user_id, "username": bob.username}
    assert second["user"]["id"] == ann.user_id
    assert (await open_dm(as_ann, bob.user_id))["id"] == first["id"]  # idempotent
    channel = first["channel"]["id"]

    # Not a friend, yourself, a malformed id: typed refusals.
    assert outcome(await open_dm(as_carol, ann.user_id)) == ("PermissionError", "NOT_FRIENDS", "userId")
    assert outcome(await open_dm(as_ann, ann.user_id)) == ("ValidationError", "INVALID_INPUT", "userId")
    assert outcome(await open_dm(as_ann, "x")) == ("ValidationError", "INVALID_ID", "userId")

    # The normal messages API: send, reply, react, pin, live events.
    async with as_bob.subscriptions() as connection:
        live = await subscribe_settled(connection, EVENTS, {"c": channel})
        hello = await send(as_ann, channel, "hello Bob")
        created = (await live.next())["payload"]["data"]["messageEvents"]
        assert created["__typename"] == "MessageCreated" and created["message"]["content"] == "hello Bob"
        reply = await send(as_bob, channel, "hi Ann", replyToId=hello["id"])
        assert (await live.next())["payload"]["data"]["messageEvents"]["message"]["replyTo"] == {
            "id": hello["id"]
        }
        assert (await as_ann.data(REACT, {"m": reply["id"], "e": "👍"}))["addReaction"][
            "__typename"
        ] == "Message"
        reaction = (await live.next())["payload"]["data"]["messageEvents"]
        assert reaction == {
            "__typename": "ReactionChanged",
            "messageId": reply["id"],
            "emoji": "👍",
            "added": True,
        }
        assert (await as_bob.data(PIN, {"m": hello["id"]}))["pinMessage"]["__typename"] == "Message"
    history = (await as_ann.data(HISTORY, {"c": channel}))["messages"]["edges"]
    assert [e["node"]["content"] for e in history] == ["hi Ann", "hello Bob"]
    assert history[0]["node"]["reactions"] == [{"emoji": "👍", "count": 1}]
    assert history[1]["node"]["pinnedAt"] is not None

    # A third user reads nothing of it, writes nothing to it, follows nothing of it.
    assert (await as_carol.data(HISTORY, {"c": channel}))["messages"] is None
    assert (await as_carol.data(MESSAGE, {"m": hello["id"]}))["message"] is None
    assert (await as_carol.data(CHANNEL, {"c": channel}))["channel"] is None
    assert (await as_carol.data(SERVER, {"s": first["id"]}))["server"] is None
    sent = (await as_carol.data(SEND, {"i": {"channelId": channel, "content": "let me in"}}))["sendMessage"]
    assert outcome(sent)[0] == "NotFoundError", sent
    async with as_carol.subscriptions() as connection:
        refused = await connection.subscribe(EVENTS, {"c": channel})
        assert stream_error_code(await refused.next()) == "NOT_FOUND"
    assert (await as_carol.data(CONVERSATIONS))["directConversations"] == []

    # Neither may reshape it: a DM has no owner, so the friend who opened it has no bypass.
    for client in (as_ann, as_bob):
        made = await client.data(CREATE_CHANNEL, {"input": {"serverId": first["id"], "name": "more"}})
        assert outcome(made["createChannel"])[0] == "PermissionError", made
        role = await client.data(
            CREATE_ROLE, {"i": {"serverId": first["id"], "name": "r", "permissions": "0"}}
        )
        assert outcome(role["createRole"])[0] == "PermissionError", role

    # Never a server in lists or discovery, for anyone.
    for client in (as_ann, as_bob):
        assert first["id"] not in [s["id"] for s in (await client.data(MY_SERVERS))["myServers"]]
        found = (await client.data(DISCOVER, {"q": "Direct messages", "n": 20}))["discoverServers"]["edges"]
        assert first["id"] not in [e["node"]["id"] for e in found]

    # Conversations: newest message first, with unread counts that reading clears.
    dora, as_dora = await Users(stack).new("dmd")
    await as_dora.data(
        "mutation($u: String!) { sendFriendRequest(username: $u) { __typename } }", {"u": bob.username}
    )
    incoming = (await as_bob.data("{ incomingFriendRequests { id } }"))["incomingFriendRequests"]
    await as_bob.data(
        "mutation($i: ID!) { acceptFriendRequest(id: $i) { __typename } }", {"i": incoming[0]["id"]}
    )
    with_dora = await open_dm(as_dora, bob.user_id)
    listed = (await as_bob.data(CONVERSATIONS))["directConversations"]
    # Latest activity first: the newly opened conversation (no message yet) is newer than Ann's last one.
    assert [c["id"] for c in listed] == [with_dora["id"], first["id"]]
    assert listed[1]["lastMessage"] == {"id": reply["id"], "content": "hi Ann"}
    assert listed[0]["lastMessage"] is None and listed[0]["unreadCount"] == 0
    assert listed[1]["unreadCount"] == 1  # Ann's "hello" (Bob's own reply does not count)
    await send(as_dora, with_dora["channel"]["id"], "one")
    await send(as_dora, with_dora["channel"]["id"], f"two <@{bob.user_id}>")
    await send(as_ann, channel, "newest")
    listed = (await as_bob.data(CONVERSATIONS))["directConversations"]
    assert [(c["id"], c["user"]["id"], c["unreadCount"], c["mentionCount"]) for c in listed] == [
        (first["id"], ann.user_id, 2, 0),
        (with_dora["id"], dora.user_id, 2, 1),
    ]
    await as_bob.data(MARK_READ, {"c": with_dora["channel"]["id"]})
    assert [c["unreadCount"] for c in (await as_bob.data(CONVERSATIONS))["directConversations"]] == [2, 0]
    assert [c["user"]["id"] for c in (await as_ann.data(CONVERSATIONS))["directConversations"]] == [
        bob.user_id
    ]
    del carol


async def test_removing_a_friend_erases_the_conversation_from_every_store(stack: Stack) -> None:
    (ann, as_ann), (bob, as_bob) = await befriend(stack, "er")
    dm = await open_dm(as_ann, bob.user_id)
    server_id, channel = dm["id"], dm["channel"]["id"]
    hello = await send(as_ann, channel, "soon gone")
    with_file = await send_files(
        stack, bob.token, channel, [("p.png", png((32, 32)), "image/png")], "a picture"
    )
    url = with_file["attachments"][0]["url"]
    assert (await get(url)).status_code == 200
    scope = f"t{server_id}/"
    assert stack.stored_keys(scope)
    before = await _leftovers(stack, int(server_id), int(channel))
    assert before["shard.messages"] == 2 and before["shard.attachments"] == 1 and before["memberships"] == 2
    assert before["tenants"] == 1 and before["direct_conversations"] == 1

    async with as_bob.subscriptions() as connection:
        live = await subscribe_settled(connection, EVENTS, {"c": channel})
        removed = (await as_ann.data(REMOVE, {"u": bob.user_id}))["removeFriend"]
        assert removed["__typename"] == "FriendRemoved"
        assert stream_error_code(await live.next()) == "NOT_FOUND"

    after = await _leftovers(stack, int(server_id), int(channel))
    assert after == dict.fromkeys(after, 0), after
    assert set(after) >= {
        "shard.servers",
        "shard.channels",
        "shard.messages",
        "shard.attachments",
        "direct_conversations",
    }
    assert stack.stored_keys(scope) == set()
    assert (await get(url)).status_code == 404
    for client in (as_ann, as_bob):
        assert (await client.data(CONVERSATIONS))["directConversations"] == []
        assert (await client.data(MESSAGE, {"m": hello["id"]}))["message"] is None
        assert (await client.data(HISTORY, {"c": channel}))["messages"] is None

    # Friends again: a new, empty conversation.
    await as_ann.data(
        "mutation($u: String!) { sendFriendRequest(username: $u) { __typename } }", {"u": bob.username}
    )
    again = await as_bob.data(
        "mutation($u: String!) { sendFriendRequest(username: $u) { __typename } }", {"u": ann.username}
    )
    assert again["sendFriendRequest"]["__typename"] == "Friendship"
    fresh = await open_dm(as_bob, ann.user_id)
    assert fresh["id"] != server_id
    assert (await as_bob.data(HISTORY, {"c": fresh["channel"]["id"]}))["messages"]["edges"] == []

    # Blocking ends the friendship too: the conversation goes, and no new one can be opened.
    await send(as_bob, fresh["channel"]["id"], "before the block")
    assert (await as_bob.data(BLOCK, {"u": ann.user_id}))["blockUser"]["__typename"] == "BlockChange"
    gone = await _leftovers(stack, int(fresh["id"]), int(fresh["channel"]["id"]))
    assert gone == dict.fromkeys(gone, 0), gone
    assert outcome(await open_dm(as_ann, bob.user_id)) == ("PermissionError", "NOT_FRIENDS", "userId")
    assert outcome(await open_dm(as_bob, ann.user_id)) == ("PermissionError", "NOT_FRIENDS", "userId")
