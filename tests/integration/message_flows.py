"""Message operations (edit, delete, reactions, pins) and small communities to send in, for the tests."""

from __future__ import annotations

from typing import Any

import httpx

from subgraphs.kernel.web import internal
from tests.harness.client import GraphQLClient, Operation
from tests.harness.stack import Stack
from tests.integration.flows import JOIN_SERVER, SIGN_UP, Account, Users, create_channel, create_server

Member = tuple[Account, GraphQLClient]


async def guild(stack: Stack, members: int) -> tuple[GraphQLClient, list[Member], str, str]:
    """An owner, `members` members who joined, the server and a text channel."""
    users = Users(stack)
    _owner_account, owner = await users.new("fanowner")
    server = await create_server(owner, "Fan-out", "PUBLIC")
    channel = await create_channel(owner, server["id"], "lobby")
    joined = []
    for i in range(members):
        account, client = await users.new(f"fan{i}")
        data = await client.data(JOIN_SERVER, {"id": server["id"]})
        assert data["joinServer"]["__typename"] == "Server", data
        joined.append((account, client))
    return owner, joined, server["id"], channel["id"]


async def created(operation: Operation, count: int) -> list[dict[str, Any]]:
    found = []
    while len(found) < count:
        message = await operation.next(timeout=20)
        assert message["type"] == "next" and not message["payload"].get("errors"), message
        event = message["payload"]["data"]["messageEvents"]
        if event["__typename"] == "MessageCreated":
            found.append(event)
    return found


ERRORS = "... on UserError { code message field }"


REACTIONS = "reactions { emoji count me }"


ADD = f"""mutation($m: ID!, $e: String!) {{ addReaction(messageId: $m, emoji: $e) {{
  __typename ... on Message {{ {REACTIONS} }} {ERRORS} }} }}"""


PIN = f"""mutation($m: ID!) {{ pinMessage(id: $m) {{
  __typename ... on Message {{ id pinnedAt }} {ERRORS} }} }}"""


EDIT = f"""mutation($i: EditMessageInput!) {{ editMessage(input: $i) {{ __typename {ERRORS} }} }}"""


DELETE = """mutation($id: ID!) { deleteMessage(id: $id) { __typename } }"""


SECRET = "query-counts"  # the app's internal secret: its subgraphs serve only callers holding it


INTERNAL = {internal.CALLER_HEADER: internal.caller_credential(SECRET)}


def post(
    base_url: str, subgraph: str, query: str, variables: dict[str, object], token: str | None = None
) -> dict:
    headers = INTERNAL | ({"authorization": f"Bearer {token}"} if token else {})
    response = httpx.post(
        f"{base_url}/{subgraph}/graphql",
        json={"query": query, "variables": variables},
        headers=headers,
        timeout=30,
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def sign_up(base_url: str, name: str) -> tuple[str, str]:
    data = post(
        base_url,
        "users",
        SIGN_UP,
        {
            "input": {
                "firstName": "N",
                "lastName": "Q",
                "username": name,
                "email": f"{name}@example.test",
                "password": "pass-word-1",
            }
        },
    )
    return data["signUp"]["accessToken"], data["signUp"]["user"]["id"]


def streams_opened(stack: Stack, viewer: str | None = None) -> int:
    """How many shared streams the stack's routers have opened so far (their log says each)."""
    count = 0
    for log in stack.workdir.glob("router*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if "[beep-fanout] stream opened" in line and (viewer is None or f'"viewer":"{viewer}"' in line):
                count += 1
    return count


def router_urls(stack: Stack) -> list[str]:
    return [u for u in (stack.router_url, stack.second_router_url) if u]
