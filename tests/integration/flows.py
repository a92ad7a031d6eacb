"""Client-side steps the tests compose: what a frontend would send."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

from tests.harness.client import GraphQLClient, Operation, SubscriptionConnection
from tests.harness.relayed import wait_relayed
from tests.harness.stack import serving

SIGN_UP = """
mutation SignUp($input: SignUpInput!) {
  signUp(input: $input) {
    __typename
    ... on AuthPayload { accessToken refreshToken expiresIn user { id username email } }
    ... on UserError { code message field }
  }
}"""

SIGN_IN = """
mutation SignIn($input: SignInInput!) {
  signIn(input: $input) {
    __typename
    ... on AuthPayload { accessToken user { id username } }
    ... on UserError { code message field }
  }
}"""

CREATE_SERVER = """
mutation CreateServer($input: CreateServerInput!) {
  createServer(input: $input) {
    __typename
    ... on Server { id name visibility owner { id username } }
    ... on UserError { code message field }
  }
}"""

JOIN_SERVER = """
mutation Join($id: ID!) {
  joinServer(serverId: $id) { __typename ... on Server { id } ... on UserError { code message field } }
}"""

CREATE_CHANNEL = """
mutation CreateChannel($input: CreateChannelInput!) {
  createChannel(input: $input) {
    __typename
    ... on Channel { id name kind server { id name } }
    ... on UserError { code message field }
  }
}"""

SEND_MESSAGE = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) {
    __typename
    ... on Message { id content cursor author { id username } channel { id } }
    ... on UserError { code message field }
  }
}"""

MESSAGE_EVENTS = """
subscription Events($channelId: ID!) {
  messageEvents(channelId: $channelId) {
    __typename
    ... on MessageCreated { message { id content author { username } channel { id name } } }
    ... on MessageUpdated { message { id content editedAt } }
    ... on MessageDeleted { messageId channelId }
  }
}"""


@dataclass
class Account:
    token: str
    user_id: str
    username: str
    email: str
    password: str
    refresh_token: str = ""


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


async def sign_up(client: GraphQLClient, prefix: str = "user") -> Account:
    username = unique(prefix)
    email = f"{username}@example.test"
    password = f"pw-{secrets.token_hex(8)}"
    data = await client.with_token(None).data(
        SIGN_UP,
        {
            "input": {
                "firstName": "Test",
                "lastName": prefix.title(),
                "username": username,
                "email": email,
                "password": password,
            }
        },
    )
    payload = data["signUp"]
    assert payload["__typename"] == "AuthPayload", payload
    return Account(
        payload["accessToken"], payload["user"]["id"], username, email, password, payload["refreshToken"]
    )


async def create_server(
    client: GraphQLClient, name: str = "Guild", visibility: str = "PUBLIC"
) -> dict[str, Any]:
    data = await client.data(CREATE_SERVER, {"input": {"name": name, "visibility": visibility}})
    assert data["createServer"]["__typename"] == "Server", data
    return data["createServer"]


# What createServer makes besides the server: (name, kind), top level, in this order (servers/service.py).
DEFAULT_CHANNELS = [("general", "TEXT"), ("General", "VOICE")]
DEFAULT_CHANNEL_NAMES = [{"name": name} for name, _kind in DEFAULT_CHANNELS]


async def default_channel(client: GraphQLClient, server_id: str, kind: str = "TEXT") -> dict[str, Any]:
    """The channel of `kind` that a new server starts with."""
    data = await client.data(
        "query($s: ID!) { server(id: $s) { channels { id name kind position } } }", {"s": server_id}
    )
    return next(
        c for c in data["server"]["channels"] if c["kind"] == kind and (c["name"], kind) in DEFAULT_CHANNELS
    )


async def create_empty_server(
    client: GraphQLClient, name: str = "Guild", visibility: str = "PUBLIC"
) -> dict[str, Any]:
    """A server without its default channels, for tests of a channel layout built from nothing."""
    server = await create_server(client, name, visibility)
    for kind in ("TEXT", "VOICE"):
        channel = await default_channel(client, server["id"], kind)
        data = await client.data(
            "mutation($id: ID!) { deleteChannel(id: $id) { __typename } }", {"id": channel["id"]}
        )
        assert data["deleteChannel"]["__typename"] == "ChannelDeleted", data
    return server


async def create_channel(
    client: GraphQLClient, server_id: str, name: str = "general", **extra: Any
) -> dict[str, Any]:
    data = await client.data(CREATE_CHANNEL, {"input": {"serverId": server_id, "name": name, **extra}})
    assert data["createChannel"]["__typename"] == "Channel", data
    return data["createChannel"]


async def send(client: GraphQLClient, channel_id: str, content: str, **extra: Any) -> dict[str, Any]:
    data = await client.data(SEND_MESSAGE, {"input": {"channelId": channel_id, "content": content, **extra}})
    assert data["sendMessage"]["__typename"] == "Message", data
    return data["sendMessage"]


def outcome(payload: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """A mutation payload's type, error code and field (code and field are None on success)."""
    return payload["__typename"], payload.get("code"), payload.get("field")


def stream_error_code(message: dict[str, Any]) -> str:
    """The code of the error that ended a subscription (a `next` with errors, or an `error` message)."""
    errors = message["payload"].get("errors") if message["type"] == "next" else message["payload"]
    assert errors, message
    return str(errors[0]["extensions"]["code"])


async def subscribe_settled(
    connection: SubscriptionConnection, query: str, variables: dict[str, Any]
) -> Operation:
    """Subscribe once nothing of the test's set-up is still on its way, and give the subgraph a moment to
    subscribe to the bus (the protocol has no "ready" message, so an event published at once could
    precede the subscription). Set-up events are relayed after their mutations answer: the relay must
    have published them all first, or one could arrive as the stream's first event."""
    await wait_relayed(serving(connection.url))
    operation = await connection.subscribe(query, variables)
    await asyncio.sleep(0.5)
    return operation
