"""The send path's round trips (issue 16): a message's author and channel names come from the messages
subgraph itself (`@provides`), not from an `_entities` call to users and channels for every message sent
and every live event.

Proven the hard way in full mode: with the users and channels processes stopped, sending, reading history
and receiving live events that select `author { username }` and `channel { name }` still work, and show
current names (a rename is seen by the next message)."""

from __future__ import annotations

import asyncio

import pytest

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import MESSAGE_EVENTS, SEND_MESSAGE, subscribe_settled
from tests.integration.message_flows import created, guild

SENT = """mutation($input: SendMessageInput!) { sendMessage(input: $input) {
  __typename ... on Message { id author { id username } channel { id name } } } }"""
HISTORY = """query($c: ID!) { messages(channelId: $c, first: 5) { edges { node {
  content author { username } channel { name } } } } }"""
RENAME = """mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { __typename } }"""


async def sent(client: GraphQLClient, channel: str, content: str) -> dict[str, object]:
    data = await client.data(SENT, {"input": {"channelId": channel, "content": content}})
    message = data["sendMessage"]
    assert message["__typename"] == "Message", data
    return message  # type: ignore[no-any-return]


async def test_names_of_authors_and_channels_are_current(stack: Stack) -> None:
    owner, ((member, member_client),), _server, channel = await guild(stack, 1)
    first = await sent(member_client, channel, "hello")
    assert first["author"] == {"id": member.user_id, "username": member.username}
    assert first["channel"] == {"id": channel, "name": "lobby"}
    renamed = f"{member.username}x"
    data = await member_client.data(RENAME, {"input": {"username": renamed}})
    assert data["updateProfile"]["__typename"] == "ProfilePayload", data
    assert (await sent(member_client, channel, "again"))["author"]["username"] == renamed  # type: ignore[index]
    page = await owner.data(HISTORY, {"c": channel})
    authors = {e["node"]["content"]: e["node"]["author"]["username"] for e in page["messages"]["edges"]}
    assert authors == {"hello": renamed, "again": renamed}  # a name is the user's, not the message's


@pytest.mark.parametrize("stopped", [("users", "channels")])
async def test_sending_reading_and_live_events_need_neither_users_nor_channels(
    full_stack: Stack, stopped: tuple[str, ...]
) -> None:
    owner, ((_member, member_client),), _server, channel = await guild(full_stack, 1)
    async with member_client.subscriptions() as connection:
        operation = await subscribe_settled(connection, MESSAGE_EVENTS, {"channelId": channel})
        await sent(owner, channel, "before")  # each process has fetched the issuer's keys by now
        await created(operation, 1)
        for name in stopped:
            full_stack.kill(name)
        try:
            data = await owner.data(SEND_MESSAGE, {"input": {"channelId": channel, "content": "alone"}})
            message = data["sendMessage"]
            assert message["__typename"] == "Message", data
            assert message["author"]["username"] and message["channel"]["id"] == channel
            (event,) = await created(operation, 1)
            assert event["message"]["author"]["username"] == message["author"]["username"]
            assert event["message"]["channel"] == {"id": channel, "name": "lobby"}
            page = await member_client.data(HISTORY, {"c": channel})
            assert [e["node"]["channel"]["name"] for e in page["messages"]["edges"]] == ["lobby", "lobby"]
        finally:
            for name in stopped:
                await asyncio.to_thread(full_stack.restart_subgraph, name)
