"""The foundation's vertical slice, through the router, as the frontend drives it (both modes)."""

from __future__ import annotations

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import (
    DEFAULT_CHANNEL_NAMES,
    JOIN_SERVER,
    MESSAGE_EVENTS,
    SIGN_IN,
    create_channel,
    create_server,
    send,
    sign_up,
    subscribe_settled,
)


async def test_sign_up_sign_in_and_me(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    ada = await sign_up(anonymous, "ada")

    signed_in = await anonymous.data(
        SIGN_IN, {"input": {"email": ada.email.upper(), "password": ada.password}}
    )
    assert signed_in["signIn"]["__typename"] == "AuthPayload"
    assert signed_in["signIn"]["user"]["id"] == ada.user_id

    me = await anonymous.with_token(signed_in["signIn"]["accessToken"]).data(
        "{ me { id username displayName email } }"
    )
    assert me["me"] == {
        "id": ada.user_id,
        "username": ada.username,
        "displayName": "Test Ada",
        "email": ada.email,
    }

    wrong = await anonymous.data(SIGN_IN, {"input": {"email": ada.email, "password": "not-the-password"}})
    assert wrong["signIn"]["__typename"] == "AuthenticationError"
    unknown = await anonymous.data(
        SIGN_IN, {"input": {"email": "nobody@example.test", "password": "whatever1"}}
    )
    assert unknown["signIn"] == wrong["signIn"]  # an unknown e-mail looks exactly like a wrong password


async def test_two_users_chat_live_and_page_history(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    ada, bob = await sign_up(anonymous, "ada"), await sign_up(anonymous, "bob")
    as_ada, as_bob = anonymous.with_token(ada.token), anonymous.with_token(bob.token)

    server = await create_server(as_ada, "Analytical Engines")
    assert server["owner"] == {"id": ada.user_id, "username": ada.username}  # Server.owner from users
    channel = await create_channel(as_ada, server["id"], "general")
    assert channel["server"] == {
        "id": server["id"],
        "name": "Analytical Engines",
    }  # Channel.server from servers
    joined = await as_bob.data(JOIN_SERVER, {"id": server["id"]})
    assert joined["joinServer"]["__typename"] == "Server"

    async with as_bob.subscriptions() as connection:
        events = await subscribe_settled(connection, MESSAGE_EVENTS, {"channelId": channel["id"]})
        sent = [await send(as_ada, channel["id"], f"note {i}") for i in range(3)]

        received = [await events.next() for _ in sent]
        for message, event in zip(sent, received, strict=True):
            assert event["type"] == "next", event
            payload = event["payload"]["data"]["messageEvents"]
            assert payload["__typename"] == "MessageCreated"
            assert payload["message"]["id"] == message["id"]
            assert payload["message"]["author"] == {
                "username": ada.username
            }  # resolved by the users subgraph
            assert payload["message"]["channel"] == {"id": channel["id"], "name": "general"}

        edited = await as_ada.data(
            'mutation($id: ID!) { editMessage(input: {id: $id, content: "note 2 (edited)"}) { __typename } }',
            {"id": sent[2]["id"]},
        )
        assert edited["editMessage"]["__typename"] == "Message"
        update = (await events.next())["payload"]["data"]["messageEvents"]
        assert update["__typename"] == "MessageUpdated"
        assert update["message"]["content"] == "note 2 (edited)" and update["message"]["editedAt"]

        deleted = await as_bob.data(
            "mutation($id: ID!) { deleteMessage(id: $id) { __typename } }", {"id": sent[0]["id"]}
        )
        assert deleted["deleteMessage"]["__typename"] == "PermissionError"  # not Bob's message
        await as_ada.data(
            "mutation($id: ID!) { deleteMessage(id: $id) { __typename } }", {"id": sent[0]["id"]}
        )
        removal = (await events.next())["payload"]["data"]["messageEvents"]
        assert removal == {
            "__typename": "MessageDeleted",
            "messageId": sent[0]["id"],
            "channelId": channel["id"],
        }

    for i in range(3, 7):
        await send(as_bob, channel["id"], f"note {i}")
    history_query = """
      query($c: ID!, $before: String, $after: String, $first: Int) {
        messages(channelId: $c, before: $before, after: $after, first: $first) {
          edges { cursor node { content author { username } } }
          pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        }
      }"""
    first = (await as_bob.data(history_query, {"c": channel["id"], "first": 4}))["messages"]
    assert [e["node"]["content"] for e in first["edges"]] == ["note 6", "note 5", "note 4", "note 3"]
    assert first["pageInfo"]["hasNextPage"] is True
    second = (
        await as_bob.data(
            history_query, {"c": channel["id"], "first": 4, "before": first["pageInfo"]["endCursor"]}
        )
    )["messages"]
    assert [e["node"]["content"] for e in second["edges"]] == ["note 2 (edited)", "note 1"]
    assert second["pageInfo"]["hasNextPage"] is False
    assert second["edges"][0]["node"]["author"] == {"username": ada.username}
    newer = (
        await as_bob.data(
            history_query, {"c": channel["id"], "first": 2, "after": second["pageInfo"]["startCursor"]}
        )
    )["messages"]
    assert [e["node"]["content"] for e in newer["edges"]] == ["note 4", "note 3"]
    assert newer["pageInfo"]["hasPreviousPage"] is True


async def test_retried_send_with_nonce_is_not_duplicated(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    ada = await sign_up(anonymous, "ada")
    as_ada = anonymous.with_token(ada.token)
    channel = await create_channel(as_ada, (await create_server(as_ada))["id"])
    first = await send(as_ada, channel["id"], "once", nonce="client-42")
    again = await send(as_ada, channel["id"], "once", nonce="client-42")
    assert again["id"] == first["id"]
    page = await as_ada.data(
        "query($c: ID!) { messages(channelId: $c) { edges { node { id } } } }", {"c": channel["id"]}
    )
    assert [e["node"]["id"] for e in page["messages"]["edges"]] == [first["id"]]


async def test_federated_entity_chain(stack: Stack) -> None:
    """Message → Channel → Server → owner User: four subgraphs in one query."""
    anonymous = GraphQLClient(stack.router_url)
    ada = await sign_up(anonymous, "ada")
    as_ada = anonymous.with_token(ada.token)
    server = await create_server(as_ada, "Chain")
    folder = await create_channel(as_ada, server["id"], "Projects", kind="FOLDER")
    channel = await create_channel(as_ada, server["id"], "engines", parentId=folder["id"])
    message = await send(as_ada, channel["id"], "hello")
    data = await as_ada.data(
        """query($id: ID!) { message(id: $id) { content author { username }
             channel { name kind parent { name kind } server { name owner { username }
                       channels { name } } } } }""",
        {"id": message["id"]},
    )
    assert data["message"] == {
        "content": "hello",
        "author": {"username": ada.username},
        "channel": {
            "name": "engines",
            "kind": "TEXT",
            "parent": {"name": "Projects", "kind": "FOLDER"},
            "server": {
                "name": "Chain",
                "owner": {"username": ada.username},
                "channels": [*DEFAULT_CHANNEL_NAMES, {"name": "Projects"}, {"name": "engines"}],
            },
        },
    }


async def test_messages_come_with_sanitised_html(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    ada = await sign_up(anonymous, "ada")
    as_ada = anonymous.with_token(ada.token)
    server = await create_server(as_ada, "Markup")
    channel = await create_channel(as_ada, server["id"], "general")
    await send(as_ada, channel["id"], "**hi** ||spoiler|| <script>x</script> [a](javascript:alert(1))")
    page = await as_ada.data(
        "query($c: ID!) { messages(channelId: $c) { edges { node { content html } } } }", {"c": channel["id"]}
    )
    (edge,) = page["messages"]["edges"]
    assert edge["node"]["html"] == (
        '<p><strong>hi</strong> <span class="spoiler">spoiler</span> &lt;script&gt;x&lt;/script&gt; '
        "[a](javascript:alert(1))</p>"
    )
