"""Every malformed input gets a typed answer (BAD_USER_INPUT or the right 4xx), never a server error,
and a refused request stores nothing. Sent as a hostile client would, through the router's public URL
and the webhook endpoint, with raw bodies (a lone surrogate cannot even be encoded as UTF-8 by a client
library: it travels as the JSON escape `\\ud800`)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import JOIN_SERVER, Account, create_channel, create_server, sign_up
from tests.integration.webhook_flows import base_url, create_webhook

SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) { __typename
  ... on Message { id } ... on UserError { code field } } }"""
PROFILE = """mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { __typename } }"""
ME = "{ me { id bio } }"
SIGN_IN = "mutation($i: SignInInput!) { signIn(input: $i) { __typename } }"
PAGE = "query($c: ID!) { messages(channelId: $c) { edges { node { id content } } } }"
SEARCH = "query($s: ID!, $b: DateTime) { searchMessages(serverId: $s, before: $b) { edges { cursor } } }"
TIMEOUT = """mutation($s: ID!, $u: ID!, $until: DateTime) {
  timeoutMember(serverId: $s, userId: $u, until: $until) { __typename } }"""
HISTORY = "query($c: ID!, $f: Int) { messages(channelId: $c, first: $f) { edges { cursor } } }"
SURROGATE = "\\ud800"  # as it appears in the JSON text


async def post_raw(url: str, body: str, token: str | None = None, **headers: str) -> httpx.Response:
    sent = {"content-type": "application/json", **headers}
    if token:
        sent["authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(timeout=60) as http:
        return await http.post(url, content=body.encode(), headers=sent)


def graphql_body(query: str, variables_json: str) -> str:
    return f'{{"query": {json.dumps(query)}, "variables": {variables_json}}}'


def codes(response: httpx.Response) -> list[str | None]:
    return [e.get("extensions", {}).get("code") for e in response.json().get("errors") or []]


def bad_input(result: Any) -> None:
    assert [e.get("extensions", {}).get("code") for e in result.errors] == ["BAD_USER_INPUT"], result


async def owner_with_channel(stack: Stack, server_name: str) -> tuple[Account, GraphQLClient, str]:
    """A new user, their client, and a text channel of a new server of theirs."""
    owner = await sign_up(GraphQLClient(stack.router_url), "own")
    as_owner = GraphQLClient(stack.router_url, owner.token)
    server = await create_server(as_owner, server_name, "PUBLIC")
    return owner, as_owner, (await create_channel(as_owner, server["id"], "general"))["id"]


async def test_unstorable_text_is_bad_input_and_stores_nothing(stack: Stack) -> None:
    owner, as_owner, channel_id = await owner_with_channel(stack, "Surrogates")

    # When a message's content holds a lone surrogate, then BAD_USER_INPUT and no message
    variables = f'{{"i": {{"channelId": "{channel_id}", "content": "hi {SURROGATE} there"}}}}'
    response = await post_raw(stack.router_url, graphql_body(SEND, variables), owner.token)
    assert response.status_code == 200 and codes(response) == ["BAD_USER_INPUT"], response.text
    history = await as_owner.data(PAGE, {"c": channel_id})
    assert history["messages"]["edges"] == []

    # Same for a profile's bio (the users subgraph), in an object key's value deep in the input
    variables = f'{{"i": {{"bio": "{SURROGATE}"}}}}'
    response = await post_raw(stack.router_url, graphql_body(PROFILE, variables), owner.token)
    assert response.status_code == 200 and codes(response) == ["BAD_USER_INPUT"], response.text
    assert (await as_owner.data(ME))["me"]["bio"] in (None, "")

    # A NUL (which PostgreSQL text cannot hold) likewise, wherever it is: a nonce, a sign-in e-mail
    nul_nonce = {"i": {"channelId": channel_id, "content": "x", "nonce": "n\u0000"}}
    bad_input(await as_owner.execute(SEND, nul_nonce))
    sign_in = {"i": {"email": "a\u0000@example.test", "password": "secret-password"}}
    bad_input(await GraphQLClient(stack.router_url).execute(SIGN_IN, sign_in))
    assert (await as_owner.data(PAGE, {"c": channel_id}))["messages"]["edges"] == []

    # A well-formed pair (an emoji as two escapes) is text like any other
    variables = f'{{"i": {{"channelId": "{channel_id}", "content": "ok \\ud83d\\ude00"}}}}'
    response = await post_raw(stack.router_url, graphql_body(SEND, variables), owner.token)
    assert response.json()["data"]["sendMessage"]["__typename"] == "Message", response.text


async def test_invalid_scalars_are_bad_input(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    owner, bob = await sign_up(anonymous, "own"), await sign_up(anonymous, "bob")
    as_owner = anonymous.with_token(owner.token)
    server = await create_server(as_owner, "Scalars", "PUBLIC")
    await anonymous.with_token(bob.token).data(JOIN_SERVER, {"id": server["id"]})
    channel_id = (await create_channel(as_owner, server["id"], "general"))["id"]

    bad_input(await as_owner.execute(SEARCH, {"s": server["id"], "b": "not-a-date"}))
    bad_input(await as_owner.execute(SEARCH, {"s": server["id"], "b": [[["2026-01-01"]]]}))
    bad_input(await as_owner.execute(TIMEOUT, {"s": server["id"], "u": bob.user_id, "until": "99999-99-99"}))
    literal = 'query($s: ID!) { searchMessages(serverId: $s, before: "not-a-date") { edges { cursor } } }'
    bad_input(await as_owner.execute(literal, {"s": server["id"]}))

    # An Int beyond 32 bits is refused by the router's own validation (400); the subgraphs answer
    # BAD_USER_INPUT too (tests/unit/test_wellformed.py)
    overflow = await as_owner.execute(HISTORY, {"c": channel_id, "f": 2**40})
    assert overflow.status == 400 and overflow.errors, overflow
    assert all(e.get("extensions", {}).get("code") != "INTERNAL_SERVER_ERROR" for e in overflow.errors)


async def test_json_nested_too_deep_is_refused(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    owner = await sign_up(anonymous, "own")
    server = await create_server(anonymous.with_token(owner.token), "Deep", "PUBLIC")
    for depth in (500, 100_000):
        deep = "[" * depth + "]" * depth
        body = graphql_body(SEARCH, f'{{"s": "{server["id"]}", "b": {deep}}}')
        response = await post_raw(stack.router_url, body, owner.token)
        assert response.status_code == 400 and codes(response) == ["BAD_USER_INPUT"], response.text[:300]
    # The router still serves
    assert (await anonymous.with_token(owner.token).data(ME))["me"]["id"] == owner.user_id


async def test_webhook_endpoint_refuses_malformed_json_with_400(stack: Stack) -> None:
    _owner, as_owner, channel_id = await owner_with_channel(stack, "Hooked")
    hook = await create_webhook(as_owner, channel_id)
    url = base_url(stack) + "/webhooks/" + hook["url"].split("/webhooks/", 1)[1]

    surrogate = await post_raw(url, f'{{"content": "deploy {SURROGATE}"}}')
    assert surrogate.status_code == 400 and surrogate.json()["code"] == 50109, surrogate.text
    deep = await post_raw(url, '{"content": "x", "embeds": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert deep.status_code == 400 and deep.json()["code"] == 50109, deep.text[:300]
    files = {"payload_json": (None, f'{{"content": "{SURROGATE}"}}')}
    async with httpx.AsyncClient(timeout=30) as http:
        multipart = await http.post(url, files=files)
    assert multipart.status_code == 400 and multipart.json()["code"] == 50035, multipart.text
    assert (await as_owner.data(PAGE, {"c": channel_id}))["messages"]["edges"] == []

    assert (await post_raw(url, '{"content": "fine"}')).status_code == 204


async def test_authorization_schemes(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    owner = await sign_up(anonymous, "own")
    query = json.dumps({"query": ME})
    # The scheme is case-insensitive (RFC 9110), as the subgraphs already read it
    lower = await post_raw(stack.router_url, query, authorization=f"bearer {owner.token}")
    assert lower.status_code == 200 and lower.json()["data"]["me"]["id"] == owner.user_id, lower.text
    for wrong in ("Basic dXNlcjpwYXNz", f"Token {owner.token}", "Bearer", f"Bearer{owner.token}"):
        refused = await post_raw(stack.router_url, query, authorization=wrong)
        assert refused.status_code == 401 and codes(refused) == ["UNAUTHENTICATED"], (wrong, refused.text)
