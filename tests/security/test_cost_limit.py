"""Demand control at the router: an operation whose estimated cost passes the ceiling is refused before it
runs, with a typed error naming the cost, over HTTP and over a WebSocket; what clients send still runs.
(The shape refused here grew as channels^depth: 20 channels at depth 4 were 7.8 MB in 4.3 s.)"""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import create_channel, create_server, send, sign_up

COST_CODE = "COST_ESTIMATED_TOO_EXPENSIVE"
DEFAULT_MAX = 200_000


def nested(levels: int) -> str:
    """issue 15's query: channel(id) { server { channels { server { channels ... } } } }."""
    inner = "id name"
    for _ in range(levels):
        inner = f"channels {{ id server {{ {inner} }} }}"
    return f"query($c: ID!) {{ channel(id: $c) {{ server {{ {inner} }} }} }}"


def aliased(levels: int, copies: int) -> str:
    inner = nested(levels).split("{", 1)[1].rsplit("}", 1)[0]  # the selection under the operation
    return "query($c: ID!) {" + " ".join(f"a{i}: {inner.strip()}" for i in range(copies)) + "}"


RICH_PAGE = """query($c: ID!) { messages(channelId: $c, first: 100) { edges { cursor node { id content html
  author { id username avatarUrl } reactions { emoji count me } mentions { id username }
  mentionedChannels { id name } attachments { filename size url } embeds { title fields { name value } }
  linkPreviews { url title } replyTo { id content author { id username } } channel { id name }
  webhook { id name } } } pageInfo { hasNextPage } } }"""

COSTLY_EVENTS = """subscription($c: ID!) { messageEvents(channelId: $c) { __typename
  ... on MessageCreated { message { id channel { server {
    channels { server { channels { id } } } } } } } } }"""


def refused(errors: list[dict[str, Any]]) -> dict[str, Any]:
    assert [(e.get("extensions") or {}).get("code") for e in errors] == [COST_CODE], errors
    error = errors[0]
    cost = error["extensions"]["cost"]
    assert cost["max"] == DEFAULT_MAX and cost["estimated"] > DEFAULT_MAX, error
    assert str(cost["estimated"]) in error["message"] and str(DEFAULT_MAX) in error["message"], error
    return dict(cost)


async def setup(stack: Stack) -> tuple[GraphQLClient, str]:
    anonymous = GraphQLClient(stack.router_url)
    owner = await sign_up(anonymous, "cost")
    as_owner = anonymous.with_token(owner.token)
    server = await create_server(as_owner, "Costly", "PUBLIC")
    channel_id = ""
    for name in ("general", "random", "links"):
        channel_id = (await create_channel(as_owner, server["id"], name))["id"]
    return as_owner, channel_id


async def test_the_exponential_query_is_refused_with_its_cost(stack: Stack) -> None:
    as_owner, channel_id = await setup(stack)

    # One level of the shape is an ordinary channel list: it runs
    assert (await as_owner.data(nested(1), {"c": channel_id}))["channel"]["server"]["channels"]

    # Two levels (500 channels of 500 channels, as declared) and the 4, and 30 aliased copies:
    # refused, with the estimate, before anything runs
    for query in (nested(2), nested(4), aliased(4, 30)):
        started = time.monotonic()
        result = await as_owner.execute(query, {"c": channel_id})
        assert time.monotonic() - started < 5
        assert result.status == 200 and result.data is None
        refused(result.errors)
    # 1 channel + 1 server + 500 channels + 500 servers + 500 x 500 channels + 500 x 500 servers
    assert refused((await as_owner.execute(nested(2), {"c": channel_id})).errors)["estimated"] == 501_002

    # Under application/graphql-response+json it is a request error: 400, no data
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            as_owner.url,
            json={"query": nested(3), "variables": {"c": channel_id}},
            headers={
                "authorization": f"Bearer {as_owner.token}",
                "accept": "application/graphql-response+json",
            },
        )
    assert response.status_code == 400, response.text
    assert "data" not in response.json()
    refused(response.json()["errors"])

    # A page asking for a million messages is refused the same way (the subgraph would refuse it too)
    page = await as_owner.execute(
        "query($c: ID!) { messages(channelId: $c, first: 1000000) { edges { cursor } } }", {"c": channel_id}
    )
    assert refused(page.errors)["estimated"] == 1_000_001


async def test_a_costly_subscription_is_refused_on_the_socket(stack: Stack) -> None:
    as_owner, channel_id = await setup(stack)
    async with as_owner.subscriptions() as socket:
        operation = await socket.subscribe(COSTLY_EVENTS, {"c": channel_id})
        message = await operation.next()
        assert message["type"] in ("error", "next"), message
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        refused(errors)


async def test_what_clients_send_still_runs(stack: Stack) -> None:
    as_owner, channel_id = await setup(stack)
    for i in range(3):
        await send(as_owner, channel_id, f"hello {i}")
    # The richest history page a client shows, at the largest page size: about 52,000 of 100,000
    page = await as_owner.data(RICH_PAGE, {"c": channel_id})
    assert len(page["messages"]["edges"]) == 3
    # All conversations with their participants, notification settings with their channels: run
    assert "conversations" in await as_owner.data(
        "{ conversations { __typename id unreadCount ... on GroupConversation { participants { id } } } }"
    )
    settings = "{ notificationSettings { defaultLevel servers { serverId channels { channelId level } } } }"
    assert "notificationSettings" in await as_owner.data(settings)


async def test_a_price_known_from_an_earlier_request_is_never_stale(stack: Stack) -> None:
    """The router prices a document once when no variable sizes its lists (router/cost.ts): a document
    whose page size is a variable is priced per request, and one over the limit is refused every time."""
    as_owner, channel_id = await setup(stack)
    await send(as_owner, channel_id, "hello")
    page = "query($c: ID!, $n: Int) { messages(channelId: $c, first: $n) { edges { cursor } } }"
    for n, allowed in ((5, True), (1_000_000, False), (5, True), (1_000_000, False)):
        result = await as_owner.execute(page, {"c": channel_id, "n": n})
        if allowed:
            assert not result.errors and len(result.data["messages"]["edges"]) == 1, result
        else:
            assert refused(result.errors)["estimated"] == 1_000_001
    for _ in range(2):
        assert refused((await as_owner.execute(nested(2), {"c": channel_id})).errors)["estimated"] == 501_002
