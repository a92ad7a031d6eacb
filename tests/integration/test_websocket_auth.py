"""WebSocket authentication as client libraries send it: the token in the graphql-transport-ws
connection_init payload under `authorization` in any case, `authToken` or `token` (a bare token or
"Bearer …"); a token that does not verify is refused with close code 4403 instead of acknowledged."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import websockets

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import (
    MESSAGE_EVENTS,
    create_channel,
    create_server,
    send,
    sign_up,
    subscribe_settled,
)
from tests.integration.identity_helpers import mint_token

KEYS = {
    "Authorization": lambda token: {"Authorization": f"Bearer {token}"},
    "AUTHORIZATION, lowercase scheme": lambda token: {"AUTHORIZATION": f"bearer {token}"},
    "authToken, bare": lambda token: {"authToken": token},
    "token, Bearer": lambda token: {"token": f"Bearer {token}"},
}


@pytest.mark.parametrize("key", list(KEYS))
async def test_the_usual_keys_authenticate_a_subscription(embedded_stack: Stack, key: str) -> None:
    # Given a user with a channel, connected with the token under a key other than `authorization`
    account = await sign_up(GraphQLClient(embedded_stack.router_url), "wskey")
    client = GraphQLClient(embedded_stack.router_url, account.token)
    server = await create_server(client)
    channel = await create_channel(client, server["id"], "lobby")
    async with client.subscriptions(KEYS[key](account.token)) as connection:
        events = await subscribe_settled(connection, MESSAGE_EVENTS, {"channelId": channel["id"]})
        # When they send a message
        sent = await send(client, channel["id"], "hello over the socket")
        # Then their subscription delivers it (not UNAUTHENTICATED)
        message = await events.next()
        assert message["type"] == "next", message
        created = message["payload"]["data"]["messageEvents"]
        assert created["message"]["id"] == sent["id"], message


async def _refused(url: str, params: dict[str, Any]) -> tuple[int | None, list[str]]:
    """Sends connection_init; the close code and whatever messages arrived before the close."""
    async with websockets.connect(
        url.replace("http://", "ws://", 1), subprotocols=["graphql-transport-ws"]
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": params}))
        received: list[str] = []
        try:
            while True:
                received.append(json.loads(await asyncio.wait_for(ws.recv(), 15))["type"])
        except websockets.ConnectionClosed:
            pass
        return ws.close_code, received


@pytest.mark.parametrize("kind", ["expired", "garbage", "foreign_issuer", "not_bearer"])
async def test_a_token_that_does_not_verify_is_refused_at_connection_init(
    embedded_stack: Stack, kind: str
) -> None:
    account = await sign_up(GraphQLClient(embedded_stack.router_url), "wsbad")
    value = {
        "expired": lambda: (
            "Bearer "
            + mint_token(
                embedded_stack, account.user_id, exp=int(time.time()) - 120, iat=int(time.time()) - 600
            )
        ),
        "garbage": lambda: "Bearer not.a.jwt",
        "foreign_issuer": lambda: (
            "Bearer " + mint_token(embedded_stack, account.user_id, iss="https://issuer.example.test")
        ),
        "not_bearer": lambda: f"Basic {account.token}",
    }[kind]()
    for params in ({"authorization": value}, {"Authorization": value}):
        code, received = await _refused(embedded_stack.router_url, params)
        assert (code, received) == (4403, []), (params, code, received)


async def test_an_anonymous_socket_is_still_acknowledged(embedded_stack: Stack) -> None:
    """No token at all is an anonymous socket (sign-up and sign-in work over it); only its
    subscriptions that need a user answer UNAUTHENTICATED."""
    async with GraphQLClient(embedded_stack.router_url).subscriptions({"other": "value"}) as connection:
        op = await connection.subscribe(MESSAGE_EVENTS, {"channelId": "1"})
        message = await op.next()
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert [e.get("extensions", {}).get("code") for e in errors] == ["UNAUTHENTICATED"]
