"""Group conversations through the router: created among friends, used with the normal messages API,
private to their participants (queries, streams, entity references), reshaped by adds, removals,
renames and leaves with live friendEvents, and erased from every store when the last one leaves."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from db.ids import DIRECTORY_SHARD, new_id
from subgraphs.friends.groups import CREATE_GROUP
from tests.harness.client import GraphQLClient, Operation
from tests.harness.stack import Stack
from tests.integration.attachment_flows import get, png, send_files
from tests.integration.flows import (
    CREATE_CHANNEL,
    CREATE_ROLE,
    DISCOVER,
    MY_SERVERS,
    Account,
    Users,
    outcome,
    send,
    stream_error_code,
    subscribe_settled,
)
from tests.integration.friend_flows import ACCEPT, BLOCK, _leftovers, open_dm, request
from tests.integration.notification_flows import until_listed
from tests.integration.search_flows import _documents, eventually, found_ids, no_documents, search

ERRORS = "... on UserError { code message field }"
GROUP_FIELDS = """id name server { id } channel { id }
  owner { id } participants { id username displayName avatarUrl email }"""
CREATE = f"""mutation($i: CreateGroupConversationInput!) {{ createGroupConversation(input: $i) {{
  __typename ... on GroupConversation {{ {GROUP_FIELDS} }} {ERRORS} }} }}"""
ADD = f"""mutation($c: ID!, $u: [ID!]!) {{ addGroupParticipants(conversationId: $c, userIds: $u) {{
  __typename ... on GroupConversation {{ {GROUP_FIELDS} }} {ERRORS} }} }}"""
REMOVE = f"""mutation($c: ID!, $u: ID!) {{ removeGroupParticipant(conversationId: $c, userId: $u) {{
  __typename ... on GroupConversation {{ {GROUP_FIELDS} }} {ERRORS} }} }}"""
RENAME = f"""mutation($c: ID!, $n: String) {{ renameGroupConversation(conversationId: $c, name: $n) {{
  __typename ... on GroupConversation {{ {GROUP_FIELDS} }} {ERRORS} }} }}"""
LEAVE = f"""mutation($c: ID!) {{ leaveGroupConversation(conversationId: $c) {{
  __typename ... on GroupConversationLeft {{ conversationId }} {ERRORS} }} }}"""
GROUP = f"""query($c: ID!) {{ groupConversation(id: $c) {{ {GROUP_FIELDS} }} }}"""
CONVERSATIONS = """{ conversations { __typename id channel { id } lastMessage { id content } unreadCount
  mentionCount ... on GroupConversation { name participants { id } }
  ... on DirectConversation { user { id } } } }"""
FRIEND_EVENTS = """subscription { friendEvents { kind user { id } actor { id } conversationId channelId
  name } }"""
EVENTS = """subscription($c: ID!) { messageEvents(channelId: $c) { __typename
  ... on MessageCreated { message { id content replyTo { id } author { id } } }
  ... on MessageUpdated { message { id content } }
  ... on ReactionChanged { messageId emoji added } } }"""
REACT = """mutation($m: ID!, $e: String!) { addReaction(messageId: $m, emoji: $e) { __typename } }"""
EDIT = f"""mutation($i: EditMessageInput!) {{ editMessage(input: $i) {{ __typename
  ... on Message {{ id content }} {ERRORS} }} }}"""
HISTORY = """query($c: ID!) { messages(channelId: $c) { edges { node { id content
  reactions { emoji count } replyTo { id } } } } }"""
MESSAGE = "query($m: ID!) { message(id: $m) { id } }"
CHANNEL = "query($c: ID!) { channel(id: $c) { id } }"
SERVER = "query($s: ID!) { server(id: $s) { id } }"
FLAGGED = """query($c: ID!) { messages(channelId: $c) { edges { node { content authorBlocked } } } }"""
SEND = f"""mutation($i: SendMessageInput!) {{ sendMessage(input: $i) {{ __typename ... on Message {{ id }}
  {ERRORS} }} }}"""


async def befriend_all(
    me: tuple[Account, GraphQLClient], others: list[tuple[Account, GraphQLClient]]
) -> None:
    """`me` becomes friends with each of `others`."""
    _, as_me = me
    for account, client in others:
        sent = await request(as_me, account.username)
        accepted = (await client.data(ACCEPT, {"i": sent["id"]}))["acceptFriendRequest"]
        assert accepted["__typename"] == "Friendship", accepted


async def three_friends(stack: Stack, prefix: str) -> list[tuple[Account, GraphQLClient]]:
    """Three new users, each the friend of the other two."""
    users = Users(stack)
    people = [await users.new(f"{prefix}{letter}") for letter in "abc"]
    await befriend_all(people[0], people[1:])
    await befriend_all(people[1], people[2:])
    return people


async def create(client: GraphQLClient, user_ids: list[str], name: str | None = None) -> dict[str, Any]:
    return (await client.data(CREATE, {"i": {"userIds": user_ids, "name": name}}))["createGroupConversation"]


async def _has_documents(stack: Stack, server_id: str, count: int) -> bool:
    return await _documents(stack, server_id) == count


async def next_friend_event(events: Operation) -> dict[str, Any]:
    message = await events.next()
    assert message["type"] == "next", message
    return dict(message["payload"]["data"]["friendEvents"])


async def entity(stack: Stack, token: str, subgraph: str, typename: str, id_: str) -> Any:
    """The subgraph's own entity resolver (what the router calls), asked directly."""
    query = f"query($r: [_Any!]!) {{ _entities(representations: $r) {{ ... on {typename} {{ id }} }} }}"
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            stack.subgraph_urls[subgraph],
            json={"query": query, "variables": {"r": [{"__typename": typename, "id": id_}]}},
            headers={"authorization": f"Bearer {token}", **stack.internal_headers},
        )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["_entities"][0]


async def test_a_group_lives_from_creation_to_erasure(stack: Stack) -> None:
    users = Users(stack)
    ann, as_ann = await users.new("gan")
    bob, as_bob = await users.new("gbo")
    cat, as_cat = await users.new("gca")
    eve, as_eve = await users.new("gev")
    sid, as_sid = await users.new("gsi")
    await befriend_all((ann, as_ann), [(bob, as_bob), (cat, as_cat)])
    await befriend_all((bob, as_bob), [(eve, as_eve)])  # Eve is Bob's friend, not Ann's

    async with as_bob.subscriptions() as bob_live, as_sid.subscriptions() as sid_live:
        bob_events = await subscribe_settled(bob_live, FRIEND_EVENTS, {})
        sid_events = await subscribe_settled(sid_live, FRIEND_EVENTS, {})
        group = await create(as_ann, [bob.user_id, cat.user_id], "  Trip  ")
        assert group["__typename"] == "GroupConversation", group
        created = await next_friend_event(bob_events)
        await sid_events.expect_nothing(0.5)  # a stranger hears nothing of it
    gid, channel = group["id"], group["channel"]["id"]
    assert group["server"]["id"] == gid and group["name"] == "Trip" and group["owner"] == {"id": ann.user_id}
    # Participants' public identity, the creator first; nobody else's e-mail.
    assert [(p["id"], p["username"]) for p in group["participants"]] == [
        (ann.user_id, ann.username),
        (bob.user_id, bob.username),
        (cat.user_id, cat.username),
    ]
    assert all(p["displayName"] and "avatarUrl" in p for p in group["participants"])
    assert [p["email"] for p in group["participants"]] == [ann.email, None, None]
    assert created == {
        "kind": "GROUP_CREATED",
        "user": {"id": ann.user_id},
        "actor": {"id": ann.user_id},
        "conversationId": gid,
        "channelId": channel,
        "name": "Trip",
    }

    # Every message feature, through the normal messages API.
    async with as_bob.subscriptions() as connection:
        live = await subscribe_settled(connection, EVENTS, {"c": channel})
        hello = await send(as_ann, channel, "hello all")
        assert (await live.next())["payload"]["data"]["messageEvents"]["message"]["content"] == "hello all"
        reply = await send(as_cat, channel, "hi Ann", replyToId=hello["id"])
        replied = (await live.next())["payload"]["data"]["messageEvents"]["message"]
        assert replied["replyTo"] == {"id": hello["id"]} and replied["author"] == {"id": cat.user_id}
        reacted = await as_bob.data(REACT, {"m": reply["id"], "e": "🎉"})
        assert reacted["addReaction"]["__typename"] == "Message"
        assert (await live.next())["payload"]["data"]["messageEvents"]["__typename"] == "ReactionChanged"
        edited = (await as_ann.data(EDIT, {"i": {"id": hello["id"], "content": "hello everyone"}}))[
            "editMessage"
        ]
        assert edited == {"__typename": "Message", "id": hello["id"], "content": "hello everyone"}
        updated = (await live.next())["payload"]["data"]["messageEvents"]
        assert updated["__typename"] == "MessageUpdated" and updated["message"]["content"] == "hello everyone"
    history = (await as_cat.data(HISTORY, {"c": channel}))["messages"]["edges"]
    assert [e["node"]["content"] for e in history] == ["hi Ann", "hello everyone"]
    assert history[0]["node"]["reactions"] == [{"emoji": "🎉", "count": 1}]
    with_file = await send_files(stack, cat.token, channel, [("g.png", png((16, 16)), "image/png")], "pic")
    url = with_file["attachments"][0]["url"]
    assert (await get(url)).status_code == 200

    # Searchable by its participants only.
    await found_ids(as_bob, gid, {hello["id"]}, q="everyone")
    assert await search(as_sid, gid, q="everyone") is None

    # Listed among Bob's conversations (with his DM), never as a server.
    dm = await open_dm(as_bob, ann.user_id)
    listed = (await as_bob.data(CONVERSATIONS))["conversations"]
    assert [(c["__typename"], c["id"]) for c in listed] == [
        ("DirectConversation", dm["id"]),  # opened after the group's newest message
        ("GroupConversation", gid),
    ]
    assert listed[1]["unreadCount"] == 3 and listed[1]["lastMessage"]["id"] == with_file["id"]
    assert listed[1]["name"] == "Trip" and len(listed[1]["participants"]) == 3
    for client in (as_ann, as_bob):
        assert gid not in [s["id"] for s in (await client.data(MY_SERVERS))["myServers"]]
        found = (await client.data(DISCOVER, {"q": "Group", "n": 20}))["discoverServers"]["edges"]
        assert gid not in [e["node"]["id"] for e in found]
    # The owner has no server powers over it: no channels, no roles.
    made = await as_ann.data(CREATE_CHANNEL, {"input": {"serverId": gid, "name": "more"}})
    assert outcome(made["createChannel"])[0] == "PermissionError", made
    role = await as_ann.data(CREATE_ROLE, {"i": {"serverId": gid, "name": "r", "permissions": "0"}})
    assert outcome(role["createRole"])[0] == "PermissionError", role

    # A stranger reads nothing, writes nothing, follows nothing, resolves no reference of it.
    assert (await as_sid.data(GROUP, {"c": gid}))["groupConversation"] is None
    assert (await as_sid.data(HISTORY, {"c": channel}))["messages"] is None
    assert (await as_sid.data(MESSAGE, {"m": hello["id"]}))["message"] is None
    assert (await as_sid.data(CHANNEL, {"c": channel}))["channel"] is None
    assert (await as_sid.data(SERVER, {"s": gid}))["server"] is None
    sent = (await as_sid.data(SEND, {"i": {"channelId": channel, "content": "let me in"}}))["sendMessage"]
    assert outcome(sent)[0] == "NotFoundError", sent
    async with as_sid.subscriptions() as connection:
        refused = await connection.subscribe(EVENTS, {"c": channel})
        assert stream_error_code(await refused.next()) == "NOT_FOUND"
    assert (await as_sid.data(CONVERSATIONS))["conversations"] == []
    for subgraph, typename, id_ in (
        ("servers", "Server", gid),
        ("channels", "Channel", channel),
        ("messages", "Message", hello["id"]),
    ):
        assert await entity(stack, sid.token, subgraph, typename, id_) is None
        assert await entity(stack, bob.token, subgraph, typename, id_) == {"id": id_}
    for mutation, variables in (
        (ADD, {"c": gid, "u": [sid.user_id]}),
        (RENAME, {"c": gid, "n": "mine"}),
        (REMOVE, {"c": gid, "u": bob.user_id}),
        (LEAVE, {"c": gid}),
    ):
        payload = next(iter((await as_sid.data(mutation, variables)).values()))
        assert outcome(payload) == ("NotFoundError", "NOT_FOUND", "conversationId"), payload

    # Any participant adds friends of theirs and renames it; everyone in it is told.
    async with as_ann.subscriptions() as ann_live, as_eve.subscriptions() as eve_live:
        ann_events = await subscribe_settled(ann_live, FRIEND_EVENTS, {})
        eve_events = await subscribe_settled(eve_live, FRIEND_EVENTS, {})
        added = (await as_bob.data(ADD, {"c": gid, "u": [eve.user_id]}))["addGroupParticipants"]
        assert [p["id"] for p in added["participants"]][-1] == eve.user_id, added
        for events in (ann_events, eve_events):
            event = await next_friend_event(events)
            assert (event["kind"], event["user"], event["actor"]) == (
                "GROUP_PARTICIPANT_ADDED",
                {"id": eve.user_id},
                {"id": bob.user_id},
            )
        renamed = (await as_cat.data(RENAME, {"c": gid, "n": "Road trip"}))["renameGroupConversation"]
        assert renamed["name"] == "Road trip"
        for events in (ann_events, eve_events):
            event = await next_friend_event(events)
            assert (event["kind"], event["actor"], event["name"]) == (
                "GROUP_RENAMED",
                {"id": cat.user_id},
                "Road trip",
            )
    cleared = (await as_eve.data(RENAME, {"c": gid, "n": None}))["renameGroupConversation"]
    assert cleared["name"] is None
    assert (await as_eve.data(GROUP, {"c": gid}))["groupConversation"]["name"] is None

    # The owner removes Eve: her stream ends at once, her reads find nothing.
    async with as_eve.subscriptions() as eve_live:
        eve_messages = await subscribe_settled(eve_live, EVENTS, {"c": channel})
        eve_events = await subscribe_settled(eve_live, FRIEND_EVENTS, {})
        removed = (await as_ann.data(REMOVE, {"c": gid, "u": eve.user_id}))["removeGroupParticipant"]
        assert eve.user_id not in [p["id"] for p in removed["participants"]], removed
        assert stream_error_code(await eve_messages.next()) == "FORBIDDEN"
        event = await next_friend_event(eve_events)
        assert (event["kind"], event["user"], event["actor"]) == (
            "GROUP_PARTICIPANT_REMOVED",
            {"id": eve.user_id},
            {"id": ann.user_id},
        )
    assert (await as_eve.data(HISTORY, {"c": channel}))["messages"] is None
    assert (await as_eve.data(GROUP, {"c": gid}))["groupConversation"] is None
    assert (await as_eve.data(CONVERSATIONS))["conversations"] == []
    assert await search(as_eve, gid, q="everyone") is None
    sent = (await as_eve.data(SEND, {"i": {"channelId": channel, "content": "still here?"}}))["sendMessage"]
    assert outcome(sent)[0] == "NotFoundError", sent

    # Only the owner removes; the owner leaving hands the group to the longest-standing participant.
    refused = (await as_bob.data(REMOVE, {"c": gid, "u": cat.user_id}))["removeGroupParticipant"]
    assert outcome(refused) == ("PermissionError", "NOT_OWNER", "conversationId")
    async with as_bob.subscriptions() as bob_live:
        bob_events = await subscribe_settled(bob_live, FRIEND_EVENTS, {})
        left = (await as_ann.data(LEAVE, {"c": gid}))["leaveGroupConversation"]
        assert left == {"__typename": "GroupConversationLeft", "conversationId": gid}
        kinds = [await next_friend_event(bob_events) for _ in range(2)]
        assert [(e["kind"], e["user"]) for e in kinds] == [
            ("GROUP_PARTICIPANT_REMOVED", {"id": ann.user_id}),
            ("GROUP_OWNER_CHANGED", {"id": bob.user_id}),
        ]
    now = (await as_bob.data(GROUP, {"c": gid}))["groupConversation"]
    assert now["owner"] == {"id": bob.user_id}
    assert [p["id"] for p in now["participants"]] == [bob.user_id, cat.user_id]
    assert (await as_ann.data(HISTORY, {"c": channel}))["messages"] is None
    removed = (await as_bob.data(REMOVE, {"c": gid, "u": cat.user_id}))["removeGroupParticipant"]
    assert [p["id"] for p in removed["participants"]] == [bob.user_id]

    # The last one out erases it: every row, every file.
    server_id = int(gid)
    before = await _leftovers(stack, server_id, int(channel), "group_conversations")
    assert before["shard.messages"] == 3 and before["shard.attachments"] == 1
    assert before["group_conversations"] == 1 and before["memberships"] == 1
    await eventually(lambda: _has_documents(stack, gid, 3))
    assert (await as_bob.data(LEAVE, {"c": gid}))["leaveGroupConversation"]["__typename"] == (
        "GroupConversationLeft"
    )
    after = await _leftovers(stack, server_id, int(channel), "group_conversations")
    assert after == dict.fromkeys(after, 0), after
    await no_documents(stack, gid)  # the search index drops them (SQL: they cascaded already)
    assert stack.stored_keys(f"t{gid}/") == set()
    assert (await get(url)).status_code == 404
    for client in (as_ann, as_bob, as_cat):
        assert (await client.data(GROUP, {"c": gid}))["groupConversation"] is None
        assert (await client.data(MESSAGE, {"m": hello["id"]}))["message"] is None
    assert [c["id"] for c in (await as_bob.data(CONVERSATIONS))["conversations"]] == [dm["id"]]


async def test_every_bad_group_input_has_its_code(stack: Stack) -> None:
    users = Users(stack)
    ann, as_ann = await users.new("gra")
    friends = [await users.new(f"gf{i}") for i in range(10)]
    await befriend_all((ann, as_ann), friends)
    ids = [account.user_id for account, _ in friends]
    stranger, _as_stranger = await users.new("grs")
    hater, as_hater = await users.new("grh")
    hated, _as_hated = await users.new("grd")
    await befriend_all((ann, as_ann), [(hater, as_hater), (hated, _as_hated)])
    assert (await as_hater.data(BLOCK, {"u": ann.user_id}))["blockUser"]["__typename"] == "BlockChange"
    assert (await as_ann.data(BLOCK, {"u": hated.user_id}))["blockUser"]["__typename"] == "BlockChange"
    unknown = str(new_id(DIRECTORY_SHARD))

    for user_ids, name, expected in (
        ([], None, ("ValidationError", "REQUIRED", "userIds")),
        ([ids[0]], None, ("ValidationError", "TOO_SHORT", "userIds")),
        ([ids[0], ann.user_id], None, ("ValidationError", "INVALID_INPUT", "userIds")),
        ([ids[0], ids[1], ids[0]], None, ("ValidationError", "DUPLICATE_ID", "userIds")),
        (ids, None, ("ValidationError", "LIMIT_REACHED", "userIds")),  # 11 in all
        ([ids[0], unknown], None, ("NotFoundError", "NOT_FOUND", "userIds")),
        ([ids[0], "nope"], None, ("ValidationError", "INVALID_ID", "userIds")),
        ([ids[0], stranger.user_id], None, ("PermissionError", "NOT_FRIENDS", "userIds")),
        ([ids[0], hater.user_id], None, ("PermissionError", "NOT_FRIENDS", "userIds")),  # blocked you
        ([ids[0], hated.user_id], None, ("PermissionError", "NOT_FRIENDS", "userIds")),  # you blocked
        ([ids[0], ids[1]], "x", ("ValidationError", "TOO_SHORT", "name")),
        ([ids[0], ids[1]], "x" * 101, ("ValidationError", "TOO_LONG", "name")),
    ):
        assert outcome(await create(as_ann, user_ids, name)) == expected, (user_ids, name)

    # Ten in all is the most: created with nine friends, no tenth can be added.
    full = await create(as_ann, ids[:9])
    assert full["__typename"] == "GroupConversation" and full["name"] is None, full
    assert len(full["participants"]) == 10
    gid = full["id"]
    as_first = friends[0][1]
    await befriend_all(friends[0], [(stranger, _as_stranger)])  # a friend of a participant, not of Ann
    too_many = (await as_first.data(ADD, {"c": gid, "u": [stranger.user_id]}))["addGroupParticipants"]
    assert outcome(too_many) == ("ValidationError", "LIMIT_REACHED", "userIds")

    small = await create(as_ann, ids[:2], "Small")
    sgid = small["id"]
    for user_ids, expected in (
        ([ids[1]], ("ConflictError", "ALREADY_MEMBER", "userIds")),
        ([ids[3], ids[3]], ("ValidationError", "DUPLICATE_ID", "userIds")),
        ([ann.user_id], ("ValidationError", "INVALID_INPUT", "userIds")),
        ([unknown], ("NotFoundError", "NOT_FOUND", "userIds")),
        ([hater.user_id], ("PermissionError", "NOT_FRIENDS", "userIds")),
        ([hated.user_id], ("PermissionError", "NOT_FRIENDS", "userIds")),
        ([], ("ValidationError", "REQUIRED", "userIds")),
    ):
        payload = (await as_ann.data(ADD, {"c": sgid, "u": user_ids}))["addGroupParticipants"]
        assert outcome(payload) == expected, (user_ids, payload)
    # A participant adds only their own friends (the stranger is the first friend's, not the second's).
    as_second = friends[1][1]
    payload = (await as_second.data(ADD, {"c": sgid, "u": [stranger.user_id]}))["addGroupParticipants"]
    assert outcome(payload) == ("PermissionError", "NOT_FRIENDS", "userIds")

    for variables, expected in (
        ({"c": sgid, "u": ids[5]}, ("NotFoundError", "NOT_PARTICIPANT", "userId")),
        ({"c": sgid, "u": ann.user_id}, ("ValidationError", "INVALID_INPUT", "userId")),
        ({"c": sgid, "u": "nope"}, ("ValidationError", "INVALID_ID", "userId")),
        ({"c": "nope", "u": ids[0]}, ("ValidationError", "INVALID_ID", "conversationId")),
        ({"c": unknown, "u": ids[0]}, ("NotFoundError", "NOT_FOUND", "conversationId")),
    ):
        payload = (await as_ann.data(REMOVE, variables))["removeGroupParticipant"]
        assert outcome(payload) == expected, (variables, payload)
    payload = (await as_second.data(REMOVE, {"c": sgid, "u": ids[0]}))["removeGroupParticipant"]
    assert outcome(payload) == ("PermissionError", "NOT_OWNER", "conversationId")
    payload = (await as_ann.data(RENAME, {"c": sgid, "n": "\u0007bell"}))["renameGroupConversation"]
    assert outcome(payload) == ("ValidationError", "INVALID_FORMAT", "name")

    # A direct conversation is not a group: group mutations do not find it.
    dm = await open_dm(as_ann, ids[0])
    for mutation, variables in (
        (ADD, {"c": dm["id"], "u": [ids[1]]}),
        (RENAME, {"c": dm["id"], "n": "no"}),
        (LEAVE, {"c": dm["id"]}),
    ):
        payload = next(iter((await as_ann.data(mutation, variables)).values()))
        assert outcome(payload) == ("NotFoundError", "NOT_FOUND", "conversationId"), payload
    assert (await as_ann.data(GROUP, {"c": dm["id"]}))["groupConversation"] is None

    # Signed out: refused.
    anonymous = await users.anonymous.execute(CREATE, {"i": {"userIds": ids[:2]}})
    assert "UNAUTHENTICATED" in anonymous.codes


async def test_creating_groups_too_fast_is_refused_with_retry_after(stack: Stack) -> None:
    (ann, as_ann), (bob, as_bob), (cat, _as_cat) = await three_friends(stack, "gl")
    # The full stack's windows are fixed hours (Redis keys by hour number): start clear of a boundary, so
    # the 20 creations and the refusal fall in one window.
    into_window = time.time() % CREATE_GROUP.window_seconds
    if into_window > CREATE_GROUP.window_seconds - 120:
        await asyncio.sleep(CREATE_GROUP.window_seconds - into_window + 1)

    names = [f"Group {i}" for i in range(CREATE_GROUP.count)]
    for name in names:
        group = await create(as_ann, [bob.user_id, cat.user_id], name)
        assert group["__typename"] == "GroupConversation", group
    refused = await as_ann.execute(CREATE, {"i": {"userIds": [bob.user_id, cat.user_id], "name": "Too many"}})
    assert refused.data is None or refused.data.get("createGroupConversation") is None, refused
    (error,) = refused.errors
    assert error["extensions"]["code"] == "RATE_LIMITED", error
    assert 1 <= error["extensions"]["retryAfter"] <= CREATE_GROUP.window_seconds
    # Refused before anything was written: Ann takes part in the 20 groups and no other.
    listed = (await as_ann.data(CONVERSATIONS))["conversations"]
    assert sorted(c["name"] for c in listed) == sorted(names)
    # Per user: Bob may still start one with the same people.
    other = await create(as_bob, [ann.user_id, cat.user_id], "Bob's")
    assert other["__typename"] == "GroupConversation", other


async def test_a_block_between_participants_removes_no_one_and_silences_the_blocked(stack: Stack) -> None:
    (ann, as_ann), (bob, as_bob), (cat, as_cat) = await three_friends(stack, "gbl")
    group = await create(as_ann, [bob.user_id, cat.user_id], "Still together")
    gid, channel = group["id"], group["channel"]["id"]
    bob_cat_dm = await open_dm(as_bob, cat.user_id)

    assert (await as_bob.data(BLOCK, {"u": cat.user_id}))["blockUser"]["__typename"] == "BlockChange"
    # As on Discord, the group keeps both (their direct conversation went with the friendship).
    for client in (as_ann, as_bob, as_cat):
        found = (await client.data(GROUP, {"c": gid}))["groupConversation"]
        assert [p["id"] for p in found["participants"]] == [ann.user_id, bob.user_id, cat.user_id]
    assert (await as_bob.data(CHANNEL, {"c": bob_cat_dm["channel"]["id"]}))["channel"] is None

    from_cat = await send(as_cat, channel, f"@{bob.username} hi")
    from_ann = await send(as_ann, channel, "from Ann")
    # Bob still reads Cat's messages, flagged for him alone (clients collapse them).
    for client, flags in ((as_bob, [False, True]), (as_ann, [False, False]), (as_cat, [False, False])):
        page = (await client.data(FLAGGED, {"c": channel}))["messages"]["edges"]
        assert [e["node"]["authorBlocked"] for e in page] == flags
        assert [e["node"]["content"] for e in page] == ["from Ann", f"<@{bob.user_id}> hi"]  # newest first

    # Nothing of Cat notifies Bob, not even her mention of him; the others are notified as usual.
    async def about_messages(client: GraphQLClient, last: dict[str, Any]) -> list[str]:
        """The message notifications (not the friend ones) once the one of `last` is there."""
        return [n["messageId"] for n in await until_listed(client, last["id"]) if n["messageId"]]

    # Bob's is handled after Cat's message (one shard, in order), so hers would be there by now.
    assert await about_messages(as_bob, from_ann) == [from_ann["id"]]
    assert await about_messages(as_cat, from_ann) == [from_ann["id"]]
    assert await about_messages(as_ann, from_cat) == [from_cat["id"]]
