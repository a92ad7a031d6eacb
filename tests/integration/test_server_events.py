"""The server-wide live stream: settings, roles, members and channels, filtered per viewer (a channel
hidden from a member is never named to them), through the router on both stacks."""

from __future__ import annotations

from typing import Any

from tests.harness.client import Operation
from tests.harness.stack import Stack
from tests.integration.flows import (
    Users,
    accept,
    create_channel,
    create_server,
    invite,
    stream_error_code,
    subscribe_settled,
)

SERVER_EVENTS = """subscription($s: ID!) { serverEvents(serverId: $s) {
  __typename
  ... on ServerUpdatedEvent { serverId server { name } }
  ... on ServerDeletedEvent { serverId }
  ... on ChannelEvent { channelId channelChange channel { name } }
  ... on RoleEvent { roleId roleChange role { name } }
  ... on MemberEvent { memberChange user { id } }
} }"""
VISIBILITY = """mutation($i: SetChannelVisibilityInput!) { setChannelVisibility(input: $i) { __typename } }"""
RENAME = """mutation($i: UpdateChannelInput!) { updateChannel(input: $i) { __typename } }"""
DELETE_CHANNEL = "mutation($c: ID!) { deleteChannel(id: $c) { __typename } }"
UPDATE_SERVER = "mutation($i: UpdateServerInput!) { updateServer(input: $i) { __typename } }"
DELETE_SERVER = (
    "mutation($s: ID!, $n: String!) { deleteServer(serverId: $s, confirmName: $n) { __typename } }"
)
CREATE_ROLE = "mutation($i: CreateRoleInput!) { createRole(input: $i) { __typename } }"
KICK = "mutation($s: ID!, $u: ID!) { kickMember(serverId: $s, userId: $u) { __typename } }"


async def event(stream: Operation) -> dict[str, Any]:
    message = await stream.next()
    assert message["type"] == "next" and not message["payload"].get("errors"), message
    return message["payload"]["data"]["serverEvents"]


async def test_server_events_show_only_what_the_member_may_see(stack: Stack) -> None:
    users = Users(stack)
    _owner, as_owner = await users.new("own")
    bob, as_bob = await users.new("bob")
    carol, as_carol = await users.new("car")
    server = await create_server(as_owner, "Live", "PRIVATE")
    code = (await invite(as_owner, server["id"]))["inviteCode"]
    assert (await accept(as_bob, code))["__typename"] == "Server"
    vault = await create_channel(as_owner, server["id"], "vault", kind="FOLDER")
    hidden = {"i": {"channelId": vault["id"], "private": True}}
    assert (await as_owner.data(VISIBILITY, hidden))["setChannelVisibility"]["__typename"] == "Channel"

    async with as_bob.subscriptions() as connection:
        stream = await subscribe_settled(connection, SERVER_EVENTS, {"s": server["id"]})
        # Inside the private folder: created, renamed, deleted — bob hears nothing of it.
        secret = await create_channel(as_owner, server["id"], "plans", parentId=vault["id"])
        await as_owner.data(RENAME, {"i": {"id": secret["id"], "name": "plans-v2"}})
        news = await create_channel(as_owner, server["id"], "news")
        assert await event(stream) == {
            "__typename": "ChannelEvent",
            "channelId": news["id"],
            "channelChange": "CREATED",
            "channel": {"name": "news"},
        }
        await as_owner.data(UPDATE_SERVER, {"i": {"serverId": server["id"], "name": "Live!"}})
        assert await event(stream) == {
            "__typename": "ServerUpdatedEvent",
            "serverId": server["id"],
            "server": {"name": "Live!"},
        }
        await as_owner.data(CREATE_ROLE, {"i": {"serverId": server["id"], "name": "Crew"}})
        role = await event(stream)
        assert (role["__typename"], role["roleChange"], role["role"]) == (
            "RoleEvent",
            "CREATED",
            {"name": "Crew"},
        )

        # Let bob into the folder: its channels appear (ADDED), by name only now.
        shown = {"i": {"channelId": vault["id"], "private": True, "memberIds": [bob.user_id]}}
        await as_owner.data(VISIBILITY, shown)
        added = [await event(stream), await event(stream)]
        assert sorted((e["channelId"], e["channelChange"]) for e in added) == sorted(
            [(vault["id"], "ADDED"), (secret["id"], "ADDED")]
        )
        assert {e["channel"]["name"] for e in added} == {"vault", "plans-v2"}
        await as_owner.data(DELETE_CHANNEL, {"c": secret["id"]})
        removed = await event(stream)
        assert (removed["channelId"], removed["channelChange"], removed["channel"]) == (
            secret["id"],
            "REMOVED",
            None,
        )

        assert (await accept(as_carol, code))["__typename"] == "Server"
        assert await event(stream) == {
            "__typename": "MemberEvent",
            "memberChange": "JOINED",
            "user": {"id": carol.user_id},
        }

        await as_owner.data(DELETE_SERVER, {"s": server["id"], "n": "Live!"})
        assert (await event(stream))["__typename"] == "ServerDeletedEvent"
        assert (await stream.next())["type"] == "complete"


async def test_server_events_end_when_the_member_is_removed(stack: Stack) -> None:
    users = Users(stack)
    _owner, as_owner = await users.new("own")
    bob, as_bob = await users.new("bob")
    _eve, as_eve = await users.new("eve")
    server = await create_server(as_owner, "Strict", "PUBLIC")
    await as_bob.data("mutation($s: ID!) { joinServer(serverId: $s) { __typename } }", {"s": server["id"]})

    async with as_eve.subscriptions() as connection:  # not a member: the same answer as no server
        refused = await (await subscribe_settled(connection, SERVER_EVENTS, {"s": server["id"]})).next()
        assert stream_error_code(refused) == "NOT_FOUND"

    async with as_bob.subscriptions() as connection:
        stream = await subscribe_settled(connection, SERVER_EVENTS, {"s": server["id"]})
        await create_channel(as_owner, server["id"], "first")
        created = await event(stream)
        if created.get("memberChange") == "JOINED":  # Bob's own join, relayed after he subscribed
            created = await event(stream)
        assert created["channelChange"] == "CREATED"
        await as_owner.data(KICK, {"s": server["id"], "u": bob.user_id})
        kicked = await event(stream)
        assert (kicked["__typename"], kicked["memberChange"]) == ("MemberEvent", "KICKED")
        assert stream_error_code(await stream.next()) == "FORBIDDEN"
