"""Reactions, pins, edit history and bulk deletion, through the router on both stacks."""

from __future__ import annotations

from typing import Any

from subgraphs.kernel.tenancy.permissions import Permission
from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import (
    JOIN_SERVER,
    Users,
    create_channel,
    create_server,
    grant_role,
    outcome,
    send,
    subscribe_settled,
)
from tests.integration.message_flows import ADD, EDIT, ERRORS, PIN, REACTIONS

REMOVE = f"""mutation($m: ID!, $e: String!) {{ removeReaction(messageId: $m, emoji: $e) {{
  __typename ... on Message {{ {REACTIONS} }} {ERRORS} }} }}"""
UNPIN = f"""mutation($m: ID!) {{ unpinMessage(id: $m) {{
  __typename ... on Message {{ pinnedAt }} {ERRORS} }} }}"""
HISTORY_PAGE = "query($c: ID!) { messages(channelId: $c) { edges { node { id } } } }"
PINS = "query($c: ID!) { pins(channelId: $c) { id content } }"
HISTORY = "query($m: ID!) { message(id: $m) { content editHistory { content replacedAt } } }"
BULK = f"""mutation($c: ID!, $ids: [ID!]!) {{ bulkDeleteMessages(channelId: $c, messageIds: $ids) {{
  __typename ... on MessagesDeleted {{ messageIds }} {ERRORS} }} }}"""
OVERWRITE = """mutation($i: ChannelOverwriteInput!) { setChannelOverwrite(input: $i) { __typename } }"""
EVENTS = """subscription($c: ID!) { messageEvents(channelId: $c) { __typename
  ... on ReactionChanged { messageId emoji added user { id } }
  ... on PinChanged { messageId pinned }
  ... on MessageDeleted { messageId } } }"""


async def room(
    stack: Stack,
) -> tuple[Users, Any, GraphQLClient, Any, GraphQLClient, dict[str, Any], dict[str, Any]]:
    users = Users(stack)
    owner, as_owner = await users.new("own")
    bob, as_bob = await users.new("bob")
    server = await create_server(as_owner, "Features", "PUBLIC")
    await as_bob.data(JOIN_SERVER, {"id": server["id"]})
    channel = await create_channel(as_owner, server["id"], "general")
    return users, owner, as_owner, bob, as_bob, server, channel


async def test_reactions_count_who_reacted_and_stream_live(stack: Stack) -> None:
    _users, owner, as_owner, bob, as_bob, _server, channel = await room(stack)
    message = await send(as_owner, channel["id"], "react to me")
    async with as_owner.subscriptions() as connection:
        stream = await subscribe_settled(connection, EVENTS, {"c": channel["id"]})
        first = (await as_bob.data(ADD, {"m": message["id"], "e": "👍"}))["addReaction"]
        assert first["reactions"] == [{"emoji": "👍", "count": 1, "me": True}]
        event = (await stream.next())["payload"]["data"]["messageEvents"]
        if event["__typename"] == "MessageCreated":  # "react to me", relayed after we subscribed
            event = (await stream.next())["payload"]["data"]["messageEvents"]
        assert event == {
            "__typename": "ReactionChanged",
            "messageId": message["id"],
            "emoji": "👍",
            "added": True,
            "user": {"id": bob.user_id},
        }
    await as_owner.data(ADD, {"m": message["id"], "e": "👍"})
    both = (await as_owner.data(ADD, {"m": message["id"], "e": "👨‍👩‍👧"}))["addReaction"]
    assert both["reactions"] == [
        {"emoji": "👍", "count": 2, "me": True},
        {"emoji": "👨‍👩‍👧", "count": 1, "me": True},
    ]
    again = (await as_bob.data(ADD, {"m": message["id"], "e": "👍"}))["addReaction"]  # idempotent
    assert again["reactions"][0] == {"emoji": "👍", "count": 2, "me": True}
    for bad in ("", "a", "👍👍x", ":thumbsup:", "x" * 100):
        refused = (await as_bob.data(ADD, {"m": message["id"], "e": bad}))["addReaction"]
        assert outcome(refused) == ("ValidationError", "INVALID_FORMAT", "emoji"), bad
    removed = (await as_bob.data(REMOVE, {"m": message["id"], "e": "👍"}))["removeReaction"]
    assert removed["reactions"][0] == {"emoji": "👍", "count": 1, "me": False}

    # Add Reactions denied in the channel: no new reactions.
    deny = str(int(Permission.ADD_REACTIONS))
    await as_owner.data(
        OVERWRITE,
        {"i": {"channelId": channel["id"], "targetKind": "ROLE", "targetId": _server["id"], "deny": deny}},
    )
    refused = (await as_bob.data(ADD, {"m": message["id"], "e": "🎉"}))["addReaction"]
    assert outcome(refused) == ("PermissionError", "FORBIDDEN", "messageId")
    assert owner.user_id  # the owner is above overwrites
    assert (await as_owner.data(ADD, {"m": message["id"], "e": "🎉"}))["addReaction"][
        "__typename"
    ] == "Message"


async def test_pins_need_the_right_and_are_listed(stack: Stack) -> None:
    _users, _owner, as_owner, bob, as_bob, server, channel = await room(stack)
    first = await send(as_bob, channel["id"], "first")
    second = await send(as_bob, channel["id"], "second")
    assert outcome((await as_bob.data(PIN, {"m": first["id"]}))["pinMessage"]) == (
        "PermissionError",
        "FORBIDDEN",
        "id",
    )
    for m in (first, second):
        assert (await as_owner.data(PIN, {"m": m["id"]}))["pinMessage"]["pinnedAt"] is not None
    assert [p["content"] for p in (await as_bob.data(PINS, {"c": channel["id"]}))["pins"]] == [
        "second",
        "first",
    ]
    await grant_role(as_owner, server["id"], bob.user_id, Permission.PIN_MESSAGES)
    assert (await as_bob.data(UNPIN, {"m": second["id"]}))["unpinMessage"]["pinnedAt"] is None
    assert [p["content"] for p in (await as_bob.data(PINS, {"c": channel["id"]}))["pins"]] == ["first"]

    # The cap: 50 pins per channel.
    for i in range(49):
        m = await send(as_owner, channel["id"], f"pin {i}")
        assert (await as_owner.data(PIN, {"m": m["id"]}))["pinMessage"]["__typename"] == "Message"
    extra = await send(as_owner, channel["id"], "one too many")
    assert outcome((await as_owner.data(PIN, {"m": extra["id"]}))["pinMessage"]) == (
        "ValidationError",
        "LIMIT_REACHED",
        "id",
    )


async def test_edit_history_is_for_moderators(stack: Stack) -> None:
    _users, _owner, as_owner, _bob, as_bob, _server, channel = await room(stack)
    message = await send(as_bob, channel["id"], "v1")
    for text in ("v2", "v3"):
        assert (await as_bob.data(EDIT, {"i": {"id": message["id"], "content": text}}))["editMessage"][
            "__typename"
        ] == "Message"
    seen_by_author = (await as_bob.data(HISTORY, {"m": message["id"]}))["message"]
    assert seen_by_author == {"content": "v3", "editHistory": None}
    seen_by_owner = (await as_owner.data(HISTORY, {"m": message["id"]}))["message"]
    assert [e["content"] for e in seen_by_owner["editHistory"]] == ["v1", "v2"]


async def test_bulk_delete_is_for_moderators_and_bounded(stack: Stack) -> None:
    _users, _owner, as_owner, _bob, as_bob, _server, channel = await room(stack)
    other = await create_channel(as_owner, _server["id"], "other")
    ids = [(await send(as_bob, channel["id"], f"spam {i}"))["id"] for i in range(3)]
    elsewhere = (await send(as_bob, other["id"], "stays"))["id"]
    refused = (await as_bob.data(BULK, {"c": channel["id"], "ids": ids}))["bulkDeleteMessages"]
    assert outcome(refused) == ("PermissionError", "FORBIDDEN", "channelId")
    too_many = await as_owner.data(
        BULK, {"c": channel["id"], "ids": [ids[0]] * 1 + [str(i) for i in range(1, 0)]}
    )
    assert too_many["bulkDeleteMessages"]["__typename"] == "MessagesDeleted"  # one id is fine
    assert too_many["bulkDeleteMessages"]["messageIds"] == [ids[0]]
    deleted = (await as_owner.data(BULK, {"c": channel["id"], "ids": [*ids, elsewhere]}))[
        "bulkDeleteMessages"
    ]
    assert sorted(deleted["messageIds"]) == sorted(ids[1:])  # the other channel's message is not touched
    page = await as_owner.data(
        "query($c: ID!) { messages(channelId: $c) { edges { node { id } } } }", {"c": other["id"]}
    )
    assert [e["node"]["id"] for e in page["messages"]["edges"]] == [elsewhere]
    empty = (await as_owner.data(BULK, {"c": channel["id"], "ids": []}))["bulkDeleteMessages"]
    assert outcome(empty) == ("ValidationError", "LIMIT_REACHED", "messageIds")


async def test_typing_is_announced_live_and_not_stored(stack: Stack) -> None:
    _users, _owner, as_owner, bob, as_bob, _server, channel = await room(stack)
    typing = """mutation($c: ID!) { startTyping(channelId: $c) {
      __typename ... on Typing { expiresAt } ... on UserError { code field } } }"""
    events = """subscription($c: ID!) { messageEvents(channelId: $c) {
      __typename ... on TypingEvent { user { id } expiresAt } } }"""
    async with as_owner.subscriptions() as connection:
        stream = await subscribe_settled(connection, events, {"c": channel["id"]})
        started = (await as_bob.data(typing, {"c": channel["id"]}))["startTyping"]
        assert started["__typename"] == "Typing"
        event = (await stream.next())["payload"]["data"]["messageEvents"]
        assert event == {
            "__typename": "TypingEvent",
            "user": {"id": bob.user_id},
            "expiresAt": started["expiresAt"],
        }
    page = await as_owner.data(HISTORY_PAGE, {"c": channel["id"]})
    assert page["messages"]["edges"] == []
    voice = await create_channel(as_owner, _server["id"], "talk", kind="VOICE")
    refused = (await as_bob.data(typing, {"c": voice["id"]}))["startTyping"]
    assert outcome(refused) == ("PermissionError", "FORBIDDEN", "channelId")


async def test_jump_to_a_message_pages_around_it(stack: Stack) -> None:
    _users, _owner, as_owner, _bob, _as_bob, _server, channel = await room(stack)
    sent = [await send(as_owner, channel["id"], f"m{i}") for i in range(10)]
    around = """query($c: ID!, $a: String, $first: Int, $before: String) {
      messages(channelId: $c, around: $a, first: $first, before: $before) {
        edges { node { content } } pageInfo { hasNextPage hasPreviousPage } } }"""
    page = (await as_owner.data(around, {"c": channel["id"], "a": sent[4]["cursor"], "first": 4}))["messages"]
    assert [e["node"]["content"] for e in page["edges"]] == ["m5", "m4", "m3", "m2"]
    assert page["pageInfo"] == {"hasNextPage": True, "hasPreviousPage": True}
    newest = (await as_owner.data(around, {"c": channel["id"], "a": sent[9]["cursor"], "first": 4}))[
        "messages"
    ]
    assert [e["node"]["content"] for e in newest["edges"]] == ["m9", "m8", "m7", "m6"]
    assert newest["pageInfo"]["hasPreviousPage"] is False
    mixed = await as_owner.execute(
        around, {"c": channel["id"], "a": sent[4]["cursor"], "before": sent[5]["cursor"]}
    )
    assert mixed.codes == ["BAD_USER_INPUT"]


async def test_read_state_counts_unread_and_mentions(stack: Stack) -> None:
    _users, _owner, as_owner, bob, as_bob, server, channel = await room(stack)
    other = await create_channel(as_owner, server["id"], "other")
    states = """query($s: ID!) {
      readStates(serverId: $s) { channel { id } lastReadMessageId unreadCount mentionCount } }"""
    mark = """mutation($c: ID!, $m: ID) { markRead(channelId: $c, messageId: $m) { __typename
      ... on ReadState { lastReadMessageId unreadCount mentionCount } ... on UserError { code field } } }"""

    first = await send(as_owner, channel["id"], "hello")
    await send(as_owner, channel["id"], f"@{bob.username} look")
    await send(as_owner, channel["id"], "@everyone news")
    await send(as_bob, channel["id"], "my own message is never unread")

    def by_channel(found: list[dict[str, Any]]) -> dict[str, tuple[Any, int, int]]:
        return {
            s["channel"]["id"]: (s["lastReadMessageId"], s["unreadCount"], s["mentionCount"]) for s in found
        }

    seen = by_channel((await as_bob.data(states, {"s": server["id"]}))["readStates"])
    # Three by others; two ping bob: his name, and @everyone (the owner may ping everyone). The server's
    # default channels (#general) have nothing unread either.
    assert seen.pop(channel["id"]) == (None, 3, 2) and seen.pop(other["id"]) == (None, 0, 0)
    assert set(seen.values()) <= {(None, 0, 0)}
    marked = (await as_bob.data(mark, {"c": channel["id"], "m": first["id"]}))["markRead"]
    assert (marked["lastReadMessageId"], marked["unreadCount"], marked["mentionCount"]) == (first["id"], 2, 2)
    back = (await as_bob.data(mark, {"c": channel["id"], "m": first["id"]}))["markRead"]  # never backwards
    assert back["lastReadMessageId"] == first["id"]
    latest = (await as_bob.data(mark, {"c": channel["id"], "m": None}))["markRead"]
    assert (latest["unreadCount"], latest["mentionCount"]) == (0, 0)
    wrong = (await as_bob.data(mark, {"c": other["id"], "m": first["id"]}))["markRead"]
    assert outcome(wrong) == ("NotFoundError", "NOT_FOUND", "messageId")
    _eve, as_eve = await _users.new("eve")
    assert (await as_eve.data(states, {"s": server["id"]}))["readStates"] is None
