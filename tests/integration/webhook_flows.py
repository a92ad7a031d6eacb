"""Creating webhooks and reaching their execute endpoint, for the tests."""

from __future__ import annotations

from typing import Any

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import JOIN_SERVER, create_channel, create_server, sign_up

WEBHOOK_FIELDS = "id name avatarUrl channel { id } creator { id }"


CREATE = f"""mutation($i: CreateWebhookInput!) {{ createWebhook(input: $i) {{ __typename
  ... on WebhookSecret {{ token url webhook {{ {WEBHOOK_FIELDS} }} }}
  ... on UserError {{ code field }} }} }}"""


def base_url(stack: Stack) -> str:
    return stack.router_url.removesuffix("/graphql")


async def setup(stack: Stack) -> tuple[Any, ...]:
    anonymous = GraphQLClient(stack.router_url)
    owner, bob = await sign_up(anonymous, "hookowner"), await sign_up(anonymous, "hookbob")
    as_owner, as_bob = anonymous.with_token(owner.token), anonymous.with_token(bob.token)
    server = await create_server(as_owner, "Hooks")
    channel = await create_channel(as_owner, server["id"], "deploys")
    await as_bob.data(JOIN_SERVER, {"id": server["id"]})
    return anonymous, owner, bob, as_owner, as_bob, server, channel


async def create_webhook(client: GraphQLClient, channel_id: str, name: str = "CI") -> dict[str, Any]:
    created = (await client.data(CREATE, {"i": {"channelId": channel_id, "name": name}}))["createWebhook"]
    assert created["__typename"] == "WebhookSecret", created
    return created
