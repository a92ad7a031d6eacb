"""Mentions resolved on send to canonical tokens, exposed as lists, rendered with current names."""

from __future__ import annotations

from tests.harness.stack import Stack
from tests.integration.flows import (
    JOIN_SERVER,
    Users,
    create_channel,
    create_server,
    default_channel,
    outcome,
    send,
)

MESSAGE = """query($m: ID!) { message(id: $m) {
  content html mentionsEveryone mentions { id username } mentionedChannels { id name } } }"""
SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) {
  __typename ... on Message { id } ... on UserError { code field } } }"""
VISIBILITY = """mutation($i: SetChannelVisibilityInput!) { setChannelVisibility(input: $i) { __typename } }"""
RENAME = """mutation($i: UpdateChannelInput!) { updateChannel(input: $i) { __typename } }"""


async def test_mentions_resolve_to_members_and_visible_channels(stack: Stack) -> None:
    users = Users(stack)
    owner, as_owner = await users.new("own")
    _bob, as_bob = await users.new("bob")
    outsider, _ = await users.new("out")
    server = await create_server(as_owner, "Mentions", "PUBLIC")
    await as_bob.data(JOIN_SERVER, {"id": server["id"]})
    general = await default_channel(as_owner, server["id"])  # #general: a new server's first channel
    secret = await create_channel(as_owner, server["id"], "secret")
    await as_owner.data(VISIBILITY, {"i": {"channelId": secret["id"], "private": True}})

    code = f"`@{owner.username}`"
    text = f"hi @{owner.username} and @{outsider.username}, see #general and #secret @everyone {code}"
    sent = await send(as_bob, general["id"], text)
    seen = (await as_bob.data(MESSAGE, {"m": sent["id"]}))["message"]
    assert seen["content"] == (
        f"hi <@{owner.user_id}> and @{outsider.username}, see <#{general['id']}> and #secret @everyone "
        f"`@{owner.username}`"
    )
    assert seen["mentions"] == [{"id": owner.user_id, "username": owner.username}]  # not the outsider
    assert seen["mentionedChannels"] == [{"id": general["id"], "name": "general"}]  # not the hidden one
    assert seen["mentionsEveryone"] is False  # bob may not ping everyone
    assert f'<span class="mention" data-user-id="{owner.user_id}">@{owner.username}</span>' in seen["html"]

    # Renaming the channel renames the link in old messages.
    await as_owner.data(RENAME, {"i": {"id": general["id"], "name": "lobby"}})
    html = (await as_bob.data(MESSAGE, {"m": sent["id"]}))["message"]["html"]
    assert f'<span class="mention" data-channel-id="{general["id"]}">#lobby</span>' in html

    loud = await send(as_owner, general["id"], "@here meeting now")
    assert (await as_owner.data(MESSAGE, {"m": loud["id"]}))["message"]["mentionsEveryone"] is True


async def test_nonce_reuse_with_other_content_is_refused(stack: Stack) -> None:
    users = Users(stack)
    _owner, as_owner = await users.new("own")
    server = await create_server(as_owner, "Nonces", "PUBLIC")
    channel = await create_channel(as_owner, server["id"], "general")
    first = await as_owner.data(SEND, {"i": {"channelId": channel["id"], "content": "one", "nonce": "n-1"}})
    again = await as_owner.data(SEND, {"i": {"channelId": channel["id"], "content": "one", "nonce": "n-1"}})
    assert again["sendMessage"]["id"] == first["sendMessage"]["id"]
    other = await as_owner.data(SEND, {"i": {"channelId": channel["id"], "content": "two", "nonce": "n-1"}})
    assert outcome(other["sendMessage"]) == ("ValidationError", "NONCE_REUSED", "nonce")
