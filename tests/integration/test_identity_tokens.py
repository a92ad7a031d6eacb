"""Through the router: tokens of either identity provider reach every subgraph; expired, tampered and
foreign tokens are UNAUTHENTICATED (at the router, and at the subgraphs, which verify again)."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import httpx
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import create_channel, create_server, sign_up
from tests.integration.identity_helpers import mint_token, provider_of

EVERY_SUBGRAPH = """query($channel: ID!) {
  me { id }
  myServers { id }
  friends { id }
  webhooks(channelId: $channel) { id }
  channel(id: $channel) { id server { id } }
  messages(channelId: $channel, first: 1) { edges { node { id } } }
}"""


async def _used_by_every_subgraph(stack: Stack, token: str) -> None:
    client = GraphQLClient(stack.router_url, token)
    server = await create_server(client)
    channel = await create_channel(client, server["id"])
    result = await client.execute(EVERY_SUBGRAPH, {"channel": channel["id"]})
    assert not result.errors, result.errors
    assert result.data is not None and result.data["myServers"][0]["id"] == server["id"]
    assert result.data["channel"]["server"]["id"] == server["id"]


async def test_tokens_of_the_stacks_provider_reach_every_subgraph(identity: Stack) -> None:
    account = await sign_up(GraphQLClient(identity.router_url))
    await _used_by_every_subgraph(identity, account.token)


async def test_keycloak_stack_accepts_built_in_issuer_tokens_too(keycloak_stack: Stack) -> None:
    """Both issuers are trusted at once (a migration from the built-in issuer to Keycloak)."""
    account = await sign_up(GraphQLClient(keycloak_stack.router_url))
    assert provider_of(keycloak_stack) == "keycloak"
    await _used_by_every_subgraph(keycloak_stack, mint_token(keycloak_stack, account.user_id))


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["beep_user_id"] = "1"  # someone else
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize("kind", ["expired", "tampered", "foreign_key", "foreign_issuer", "wrong_audience"])
async def test_bad_tokens_are_unauthenticated(identity: Stack, kind: str) -> None:
    account = await sign_up(GraphQLClient(identity.router_url))
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = {
        "expired": lambda: mint_token(
            identity, account.user_id, exp=int(time.time()) - 120, iat=int(time.time()) - 600
        ),
        "tampered": lambda: _tampered(account.token),
        "foreign_key": lambda: mint_token(identity, account.user_id, key=stranger, kid="someone-elses-key"),
        "foreign_issuer": lambda: mint_token(identity, account.user_id, iss="https://issuer.example.test"),
        "wrong_audience": lambda: mint_token(identity, account.user_id, aud="not-beep"),
    }[kind]()
    through_router = await GraphQLClient(identity.router_url, token).execute("{ me { id } }")
    assert through_router.codes == ["UNAUTHENTICATED"], through_router
    # The subgraph verifies on its own too (defence in depth: reachable without the router).
    async with httpx.AsyncClient(timeout=10) as http:
        direct = await http.post(
            identity.subgraph_urls["users"],
            json={"query": "{ me { id } }"},
            headers={"authorization": f"Bearer {token}", **identity.internal_headers},
        )
    assert direct.status_code == 401
    assert direct.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_expired_token_is_refused_over_websocket(identity: Stack) -> None:
    """Refused at connection_init (close code 4403), not acknowledged and then failing every operation."""
    account = await sign_up(GraphQLClient(identity.router_url))
    expired = mint_token(identity, account.user_id, exp=int(time.time()) - 120, iat=int(time.time()) - 600)
    url = identity.router_url.replace("http://", "ws://", 1)
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {expired}"}})
        )
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 15)
    assert ws.close_code == 4403
