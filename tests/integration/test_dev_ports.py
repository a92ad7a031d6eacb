"""`beep dev` on other ports than the defaults, as a user runs it (`BEEP_PORT=4900 scripts/dev --port 4800`):
tokens are accepted, and every URL Beep hands out (webhooks, pictures) is on the router's port and works."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image

from tests.harness.client import GraphQLClient
from tests.harness.dev import DevRun, start_dev
from tests.harness.ports import free_port
from tests.integration.flows import create_server, default_channel, sign_up

pytestmark = pytest.mark.embedded

CREATE_WEBHOOK = """mutation($i: CreateWebhookInput!) { createWebhook(input: $i) { __typename
  ... on WebhookSecret { url } ... on UserError { code message } } }"""
SET_AVATAR = """mutation($file: Upload!) { setAvatar(file: $file) { __typename
  ... on ProfilePayload { user { avatarUrl } } ... on UserError { code message } } }"""


@pytest.fixture
async def dev() -> AsyncIterator[tuple[DevRun, int]]:
    """`BEEP_PORT=<p> beep dev --port <r>`: the subgraphs on one free port, the router on another."""
    port, router_port = free_port(), free_port()
    run = start_dev(["--port", str(router_port)], {"BEEP_PORT": str(port)})
    try:
        await asyncio.to_thread(run.wait_ready)
        yield run, router_port
    finally:
        await asyncio.to_thread(run.stop)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 90)).save(out, format="PNG")
    return out.getvalue()


async def test_tokens_webhooks_and_pictures_follow_the_ports(dev: tuple[DevRun, int]) -> None:
    run, router_port = dev
    public = f"http://127.0.0.1:{router_port}"
    assert f"http://localhost:{router_port}/graphql" in run.console

    # Given a user who signs up through the router
    client = GraphQLClient(f"{public}/graphql")
    owner = await sign_up(client, "porter")
    as_owner = client.with_token(owner.token)

    # Then their token is accepted (its issuer is this instance's, and so is the JWKS the router reads)
    assert (await as_owner.data("{ me { id } }"))["me"] == {"id": owner.user_id}

    # When they create a webhook, its URL is on the router's port, and executing it there works
    server = await create_server(as_owner, "Ports")
    channel = await default_channel(as_owner, server["id"])
    created = (await as_owner.data(CREATE_WEBHOOK, {"i": {"channelId": channel["id"], "name": "CI"}}))[
        "createWebhook"
    ]
    assert created["__typename"] == "WebhookSecret", created
    assert created["url"].startswith(f"{public}/webhooks/"), created["url"]
    async with httpx.AsyncClient(timeout=30) as http:
        executed = await http.post(created["url"], json={"content": "sent to the public URL"})
        assert executed.status_code == 204, executed.text

        # And a picture's URL is on the router's port too (not a subgraph's), and downloads from there
        form = {
            "operations": json.dumps({"query": SET_AVATAR, "variables": {"file": None}}),
            "map": json.dumps({"0": ["variables.file"]}),
        }
        headers = {"authorization": f"Bearer {owner.token}", "GraphQL-Require-Preflight": "true"}
        response = await http.post(
            f"{public}/graphql", data=form, files={"0": ("me.png", png(), "image/png")}, headers=headers
        )
        result = response.json()["data"]["setAvatar"]
        assert result["__typename"] == "ProfilePayload", result
        url = result["user"]["avatarUrl"]
        assert url.startswith(f"{public}/media/files/"), url
        picture = await http.get(url)
    assert picture.status_code == 200, picture.text
    assert picture.headers["content-type"] == "image/webp"
    assert picture.headers["x-content-type-options"] == "nosniff"
    assert Image.open(io.BytesIO(picture.content)).size == (64, 48)
