"""One server's data never reaches another's members — through every door: queries, entity references,
mutations and subscriptions."""

from __future__ import annotations

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import (
    CREATE_CHANNEL,
    JOIN_SERVER,
    MESSAGE_EVENTS,
    SEND_MESSAGE,
    create_channel,
    create_server,
    send,
    sign_up,
    subscribe_settled,
)


async def test_outsider_sees_nothing_of_a_private_server(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    owner, outsider = await sign_up(anonymous, "own"), await sign_up(anonymous, "out")
    as_owner, as_outsider = anonymous.with_token(owner.token), anonymous.with_token(outsider.token)
    server = await create_server(as_owner, "Secret Lab", visibility="PRIVATE")
    channel = await create_channel(as_owner, server["id"], "plans")
    message = await send(as_owner, channel["id"], "the secret plan")

    seen = await as_outsider.execute(
        """query($s: ID!, $c: ID!, $m: ID!) {
             server(id: $s) { id } channel(id: $c) { id } message(id: $m) { id content }
             messages(channelId: $c) { edges { node { content } } } }""",
        {"s": server["id"], "c": channel["id"], "m": message["id"]},
    )
    assert seen.errors == []
    assert seen.data == {"server": None, "channel": None, "message": None, "messages": None}

    join = await as_outsider.data(JOIN_SERVER, {"id": server["id"]})
    assert join["joinServer"]["__typename"] == "NotFoundError"  # same answer as a server that does not exist
    write = await as_outsider.data(
        SEND_MESSAGE, {"input": {"channelId": channel["id"], "content": "let me in"}}
    )
    assert write["sendMessage"]["__typename"] == "NotFoundError"
    add_channel = await as_outsider.data(
        CREATE_CHANNEL, {"input": {"serverId": server["id"], "name": "mine"}}
    )
    assert add_channel["createChannel"]["__typename"] == "NotFoundError"
    reply = await as_outsider.data(
        SEND_MESSAGE, {"input": {"channelId": channel["id"], "content": "re", "replyToId": message["id"]}}
    )
    assert reply["sendMessage"]["__typename"] == "NotFoundError"

    async with as_outsider.subscriptions() as connection:
        op = await subscribe_settled(connection, MESSAGE_EVENTS, {"channelId": channel["id"]})
        refused = await op.next()
        errors = refused["payload"] if refused["type"] == "error" else refused["payload"].get("errors")
        assert errors and errors[0]["extensions"]["code"] == "NOT_FOUND", refused
        assert (await op.next())["type"] == "complete"  # the stream ended with the refusal
        await send(as_owner, channel["id"], "still secret")
        await op.expect_nothing(within=1.0)


async def test_member_of_one_server_cannot_reach_into_another(stack: Stack) -> None:
    """Two tenants (almost surely on different shards); cross-tenant IDs in one request are refused."""
    anonymous = GraphQLClient(stack.router_url)
    alice, bob = await sign_up(anonymous, "alice"), await sign_up(anonymous, "bob")
    as_alice, as_bob = anonymous.with_token(alice.token), anonymous.with_token(bob.token)
    a_server = await create_server(as_alice, "Server A", visibility="PRIVATE")
    b_server = await create_server(as_bob, "Server B", visibility="PRIVATE")
    a_channel = await create_channel(as_alice, a_server["id"])
    b_channel = await create_channel(as_bob, b_server["id"])
    a_message = await send(as_alice, a_channel["id"], "A only")

    # Bob replies in his own channel to Alice's message: refused, and nothing of A's content comes back.
    cross = await as_bob.data(
        SEND_MESSAGE, {"input": {"channelId": b_channel["id"], "content": "x", "replyToId": a_message["id"]}}
    )
    assert cross["sendMessage"]["__typename"] == "NotFoundError"
    # Bob asks for a folder of server A as the parent of a channel in B.
    folder = await create_channel(as_alice, a_server["id"], "A folder", kind="FOLDER")
    parent = await as_bob.data(
        CREATE_CHANNEL, {"input": {"serverId": b_server["id"], "name": "c", "parentId": folder["id"]}}
    )
    assert parent["createChannel"]["code"] == "INVALID_PARENT"
    # Server.channels of A asked by Bob (entity reference through the channels subgraph).
    channels = await as_bob.execute(
        "query($id: ID!) { server(id: $id) { channels { id } } }", {"id": a_server["id"]}
    )
    assert channels.data == {"server": None}


async def test_member_who_leaves_the_audience_stops_receiving(stack: Stack) -> None:
    """Events are filtered per subscriber: a second channel's events never arrive on the first's stream."""
    anonymous = GraphQLClient(stack.router_url)
    ada = await sign_up(anonymous, "ada")
    as_ada = anonymous.with_token(ada.token)
    server = await create_server(as_ada, "Two rooms")
    one = await create_channel(as_ada, server["id"], "one")
    two = await create_channel(as_ada, server["id"], "two")
    async with as_ada.subscriptions() as connection:
        op = await subscribe_settled(connection, MESSAGE_EVENTS, {"channelId": one["id"]})
        await send(as_ada, two["id"], "in two")
        await send(as_ada, one["id"], "in one")
        event = await op.next()
        assert event["payload"]["data"]["messageEvents"]["message"]["content"] == "in one"
