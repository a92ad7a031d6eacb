"""Content can never break a page: mention tokens typed by hand are checked on send, and what a reader
cannot resolve (a hidden or deleted channel, a user who does not exist) is left out of the lists."""

from __future__ import annotations

from typing import Any

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import JOIN_SERVER, create_channel, create_server, sign_up

FIELDS = "id content html mentions { id username } mentionedChannels { id name }"
SEND = f"""mutation($i: SendMessageInput!) {{ sendMessage(input: $i) {{
  __typename ... on Message {{ {FIELDS} }} ... on UserError {{ code field }} }} }}"""
PAGE = f"query($c: ID!) {{ messages(channelId: $c) {{ edges {{ node {{ {FIELDS} }} }} }} }}"
VISIBILITY = "mutation($i: SetChannelVisibilityInput!) { setChannelVisibility(input: $i) { __typename } }"
DELETE_CHANNEL = "mutation($id: ID!) { deleteChannel(id: $id) { __typename } }"
NO_SUCH_ID = "99999999999999999999"  # 20 digits: beyond any id (and a 64-bit integer)


async def sent(client: GraphQLClient, channel_id: str, content: str) -> dict[str, Any]:
    result = await client.execute(SEND, {"i": {"channelId": channel_id, "content": content}})
    assert not result.errors, result.errors  # before: INTERNAL_SERVER_ERROR, the message stored anyway
    assert result.data is not None and result.data["sendMessage"]["__typename"] == "Message", result
    return result.data["sendMessage"]


async def page(client: GraphQLClient, channel_id: str) -> list[dict[str, Any]]:
    result = await client.execute(PAGE, {"c": channel_id})
    assert not result.errors, result.errors  # before: the whole page null
    assert result.data is not None and result.data["messages"] is not None
    return [edge["node"] for edge in result.data["messages"]["edges"]]


async def test_tokens_the_sender_may_not_address_are_stored_as_plain_text(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    owner, bob, outsider = [await sign_up(anonymous, p) for p in ("own", "bob", "out")]
    as_owner, as_bob = anonymous.with_token(owner.token), anonymous.with_token(bob.token)
    server = await create_server(as_owner, "Tokens", "PUBLIC")
    await as_bob.data(JOIN_SERVER, {"id": server["id"]})
    general = await create_channel(as_owner, server["id"], "general")
    secret = await create_channel(as_owner, server["id"], "secret")
    await as_owner.data(VISIBILITY, {"i": {"channelId": secret["id"], "private": True}})
    elsewhere = await create_channel(as_owner, (await create_server(as_owner, "Other"))["id"], "away")

    # Given bob, who cannot see #secret, when he types raw tokens for it and for users he may not name
    content = (
        f"<#{secret['id']}> <#{elsewhere['id']}> <#{NO_SUCH_ID}> <@{outsider.user_id}> <@{NO_SUCH_ID}> "
        f"<@{owner.user_id}> <#{general['id']}> `<#{secret['id']}>`"
    )
    message = await sent(as_bob, general["id"], content)

    # Then only what he may address stays a token; code is left as typed and mentions nothing
    assert message["content"] == (
        "#unknown-channel #unknown-channel #unknown-channel @unknown-user @unknown-user "
        f"<@{owner.user_id}> <#{general['id']}> `<#{secret['id']}>`"
    )
    assert message["mentions"] == [{"id": owner.user_id, "username": owner.username}]
    assert message["mentionedChannels"] == [{"id": general["id"], "name": "general"}]
    for reader in (as_owner, as_bob):
        (seen,) = await page(reader, general["id"])
        assert seen["content"] == message["content"]
        assert seen["mentionedChannels"] == [{"id": general["id"], "name": "general"}]


async def test_a_reader_gets_only_what_resolves_for_them(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    owner, bob = await sign_up(anonymous, "own"), await sign_up(anonymous, "bob")
    as_owner, as_bob = anonymous.with_token(owner.token), anonymous.with_token(bob.token)
    server = await create_server(as_owner, "Readers", "PUBLIC")
    await as_bob.data(JOIN_SERVER, {"id": server["id"]})
    general = await create_channel(as_owner, server["id"], "general")
    secret = await create_channel(as_owner, server["id"], "secret")
    doomed = await create_channel(as_owner, server["id"], "doomed")
    await as_owner.data(VISIBILITY, {"i": {"channelId": secret["id"], "private": True}})

    # Given the owner links a private channel (which bob cannot see) and one that is then deleted
    text = f"see <#{secret['id']}> and <#{doomed['id']}> and <#{general['id']}>"
    message = await sent(as_owner, general["id"], text)
    assert message["content"] == text
    assert [c["name"] for c in message["mentionedChannels"]] == ["secret", "doomed", "general"]
    deleted = await as_owner.data(DELETE_CHANNEL, {"id": doomed["id"]})
    assert deleted["deleteChannel"]["__typename"] == "ChannelDeleted", deleted

    # Then the page still loads for everyone, each reader's lists holding what resolves for them
    (for_owner,) = await page(as_owner, general["id"])
    assert [c["name"] for c in for_owner["mentionedChannels"]] == ["secret", "general"]
    (for_bob,) = await page(as_bob, general["id"])
    assert for_bob["mentionedChannels"] == [{"id": general["id"], "name": "general"}]
    assert f'data-channel-id="{secret["id"]}">#deleted-channel</span>' in for_bob["html"]
    assert "secret" not in for_bob["html"]
