"""The send limit per member and channel, on a stack with the default settings (the shared stacks raise
it for the burst tests): 10 messages per 10 s, then RATE_LIMITED with retryAfter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack, start_embedded
from tests.integration.flows import JOIN_SERVER, SEND_MESSAGE, Users, create_channel, create_server, send

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def default_stack() -> Iterator[Stack]:
    stack = start_embedded({"BEEP_MESSAGE_SEND_LIMIT": "10"})
    yield stack
    stack.stop()


async def attempt(client: GraphQLClient, channel: str, content: str) -> list[dict]:
    result = await client.execute(SEND_MESSAGE, {"input": {"channelId": channel, "content": content}})
    return result.errors


async def test_the_eleventh_message_in_ten_seconds_is_refused_per_member_and_channel(
    default_stack: Stack,
) -> None:
    users = Users(default_stack)
    _alice, as_alice = await users.new("alice")
    _bob, as_bob = await users.new("bob")
    server = await create_server(as_alice, "Limits", "PUBLIC")
    await as_bob.data(JOIN_SERVER, {"id": server["id"]})
    general = await create_channel(as_alice, server["id"], "general")
    other = await create_channel(as_alice, server["id"], "other")

    for i in range(10):
        await send(as_alice, general["id"], f"ok {i}")
    errors = await attempt(as_alice, general["id"], "one too many")
    assert len(errors) == 1 and errors[0]["extensions"]["code"] == "RATE_LIMITED", errors
    assert 1 <= errors[0]["extensions"]["retryAfter"] <= 10
    assert "10 per 10 s" in errors[0]["message"]

    await send(as_alice, other["id"], "another channel has its own budget")
    await send(as_bob, general["id"], "another member too")
    history = await as_alice.data(
        "query($c: ID!) { messages(channelId: $c, first: 50) { edges { node { content } } } }",
        {"c": general["id"]},
    )
    contents = [e["node"]["content"] for e in history["messages"]["edges"]]
    assert "one too many" not in contents and len(contents) == 11
