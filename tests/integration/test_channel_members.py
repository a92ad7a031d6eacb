"""A channel's member list and its live changes: only members who can view the channel, in pages,
through the router on both stacks."""

from __future__ import annotations

from subgraphs.kernel.tenancy.permissions import Permission
from tests.harness.client import GraphQLClient, Operation
from tests.harness.stack import Stack
from tests.integration.flows import (
    JOIN_SERVER,
    Users,
    create_channel,
    create_server,
    grant_role,
    stream_error_code,
    subscribe_settled,
)

MEMBERS = """query($c: ID!, $first: Int, $after: String) { channel(id: $c) {
  members(first: $first, after: $after) { edges { cursor node { user { id } } }
  pageInfo { hasNextPage endCursor } } } }"""
MEMBER_EVENTS = """subscription($c: ID!) { channelMemberEvents(channelId: $c) {
  change user { id } connected status } }"""
VISIBILITY = """mutation($i: SetChannelVisibilityInput!) { setChannelVisibility(input: $i) { __typename } }"""
LEAVE = "mutation($s: ID!) { leaveServer(serverId: $s) { __typename } }"
UPDATE_ROLE = "mutation($i: UpdateRoleInput!) { updateRole(input: $i) { __typename } }"
PRESENCE = """query($c: ID!, $s: ID!) {
  channel(id: $c) { members { edges { node { user { id connectionStatus } } } } }
  server(id: $s) { onlineCount } }"""
DELETE_CHANNEL = "mutation($c: ID!) { deleteChannel(id: $c) { __typename } }"


async def member_ids(client: GraphQLClient, channel_id: str, first: int = 100) -> list[str]:
    ids: list[str] = []
    after = None
    while True:
        data = await client.data(MEMBERS, {"c": channel_id, "first": first, "after": after})
        page = data["channel"]["members"]
        ids += [edge["node"]["user"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return ids
        after = page["pageInfo"]["endCursor"]


async def change(stream: Operation) -> tuple[str, str | None]:
    message = await stream.next()
    assert message["type"] == "next" and not message["payload"].get("errors"), message
    event = message["payload"]["data"]["channelMemberEvents"]
    return event["change"], event["user"]["id"] if event["user"] else None


async def test_private_channel_lists_only_who_can_view_it_in_pages(stack: Stack) -> None:
    users = Users(stack)
    owner, as_owner = await users.new("own")
    server = await create_server(as_owner, "Listed", "PUBLIC")
    others = [await users.new(f"m{i}") for i in range(5)]
    for _account, client in others:
        assert (await client.data(JOIN_SERVER, {"id": server["id"]}))["joinServer"]["__typename"] == "Server"
    lobby = await create_channel(as_owner, server["id"], "lobby")
    staff = await create_channel(as_owner, server["id"], "staff")
    insiders = [others[0][0].user_id, others[1][0].user_id]
    await as_owner.data(VISIBILITY, {"i": {"channelId": staff["id"], "private": True, "memberIds": insiders}})

    everyone = sorted([owner.user_id, *(a.user_id for a, _ in others)], key=int)
    assert await member_ids(as_owner, lobby["id"], first=2) == everyone  # three pages of two
    assert await member_ids(as_owner, staff["id"], first=1) == sorted([owner.user_id, *insiders], key=int)
    outsider = others[4][1]
    assert (await outsider.data(MEMBERS, {"c": staff["id"]}))["channel"] is None  # as for no channel
    bad = await outsider.execute(MEMBERS, {"c": lobby["id"], "after": "nonsense"})
    assert bad.errors and bad.errors[0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_member_list_changes_live(stack: Stack) -> None:
    users = Users(stack)
    _owner, as_owner = await users.new("own")
    bob, as_bob = await users.new("bob")
    carol, as_carol = await users.new("car")
    server = await create_server(as_owner, "Live list", "PUBLIC")
    await as_bob.data(JOIN_SERVER, {"id": server["id"]})
    staff = await create_channel(as_owner, server["id"], "staff")
    await as_owner.data(
        VISIBILITY, {"i": {"channelId": staff["id"], "private": True, "memberIds": [bob.user_id]}}
    )

    async with as_bob.subscriptions() as connection:
        stream = await subscribe_settled(connection, MEMBER_EVENTS, {"c": staff["id"]})
        await as_carol.data(JOIN_SERVER, {"id": server["id"]})  # cannot view #staff: nothing
        role_id = await grant_role(as_owner, server["id"], carol.user_id, Permission(0))
        assert await change(stream) == ("REMOVED", carol.user_id)  # re-checked: still not in
        # Give the role Administrator: carol can view it now; a role edit may move many: RESYNC.
        await as_owner.data(
            UPDATE_ROLE, {"i": {"id": role_id, "permissions": str(int(Permission.ADMINISTRATOR))}}
        )
        assert await change(stream) == ("RESYNC", None)
        assert carol.user_id in await member_ids(as_bob, staff["id"])
        await as_carol.data(LEAVE, {"s": server["id"]})
        assert await change(stream) == ("REMOVED", carol.user_id)

        await as_owner.data(DELETE_CHANNEL, {"c": staff["id"]})
        assert stream_error_code(await stream.next()) == "NOT_FOUND"


async def test_presence_reaches_the_member_list_and_counts(stack: Stack) -> None:
    users = Users(stack)
    _owner, as_owner = await users.new("own")
    bob, as_bob = await users.new("bob")
    carol, as_carol = await users.new("car")
    server = await create_server(as_owner, "Presence list", "PUBLIC")
    for client in (as_bob, as_carol):
        await client.data(JOIN_SERVER, {"id": server["id"]})
    lobby = await create_channel(as_owner, server["id"], "lobby")

    async with as_bob.subscriptions() as bobs:
        stream = await subscribe_settled(bobs, MEMBER_EVENTS, {"c": lobby["id"]})
        async with as_carol.subscriptions() as carols:  # carol comes online: a live connection
            await subscribe_settled(carols, MEMBER_EVENTS, {"c": lobby["id"]})
            message = await stream.next(timeout=20)
            event = message["payload"]["data"]["channelMemberEvents"]
            assert (event["change"], event["user"], event["connected"]) == (
                "PRESENCE",
                {"id": carol.user_id},
                True,
            )
            seen = await as_bob.data(PRESENCE, {"c": lobby["id"], "s": server["id"]})
            states = {
                e["node"]["user"]["id"]: e["node"]["user"]["connectionStatus"]
                for e in seen["channel"]["members"]["edges"]
            }
            assert states[carol.user_id] == "CONNECTED" and states[bob.user_id] == "CONNECTED"
            assert seen["server"]["onlineCount"] == 2  # bob and carol; the owner has no live connection
        gone = (await stream.next(timeout=20))["payload"]["data"]["channelMemberEvents"]
        assert (gone["change"], gone["user"], gone["connected"]) == ("PRESENCE", {"id": carol.user_id}, False)
