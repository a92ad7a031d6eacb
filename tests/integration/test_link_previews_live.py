"""Link previews through the router on both stacks: fetched after the send by the worker, delivered live
(`MessageEmbedsUpdated`), readable on the message; refused for hostile links, suppressed on request, and
not produced for an author without Embed Links."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from subgraphs.kernel.tenancy.permissions import Permission
from tests.harness.client import GraphQLClient, Operation
from tests.harness.preview_site import serve_preview_site
from tests.harness.stack import Stack
from tests.integration.flows import JOIN_SERVER, Users, create_channel, create_server, send, subscribe_settled

PREVIEWS = "linkPreviews { url kind title description siteName imageUrl }"
EVENTS = f"""subscription($c: ID!) {{ messageEvents(channelId: $c) {{ __typename
  ... on MessageCreated {{ message {{ id }} }}
  ... on MessageLinkPreviewsUpdated {{ messageId {PREVIEWS} }} }} }}"""
MESSAGE = f"query($m: ID!) {{ message(id: $m) {{ suppressEmbeds {PREVIEWS} }} }}"
SUPPRESS = """mutation($m: ID!, $s: Boolean!) { suppressEmbeds(messageId: $m, suppress: $s) {
  __typename ... on Message { suppressEmbeds } ... on UserError { code } } }"""
OVERWRITE = """mutation($i: ChannelOverwriteInput!) { setChannelOverwrite(input: $i) { __typename } }"""


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_preview_site() as origin:
        yield origin


async def room(stack: Stack) -> tuple[GraphQLClient, dict[str, Any], dict[str, Any]]:
    _owner, as_owner = await Users(stack).new("embedder")
    server = await create_server(as_owner, "Previews", "PUBLIC")
    channel = await create_channel(as_owner, server["id"], "links")
    return as_owner, server, channel


async def next_event(operation: Operation, timeout: float = 20) -> dict[str, Any]:
    message = await operation.next(timeout)
    assert message["type"] == "next" and "errors" not in message["payload"], message
    return message["payload"]["data"]["messageEvents"]


async def test_a_link_gets_its_preview_live_and_on_the_message(stack: Stack, site: str) -> None:
    as_owner, _server, channel = await room(stack)
    async with as_owner.subscriptions() as connection:
        events = await subscribe_settled(connection, EVENTS, {"c": channel["id"]})
        sent = await send(as_owner, channel["id"], f"read this: {site}/page and <{site}/hop>")
        assert (await next_event(events))["__typename"] == "MessageCreated"
        update = await next_event(events)
    assert update["__typename"] == "MessageLinkPreviewsUpdated" and update["messageId"] == sent["id"]
    (embed,) = update["linkPreviews"]  # the <...> link is suppressed by its author
    assert embed == {
        "url": f"{site}/page",
        "kind": "link",
        "title": "A page & its title",
        "description": "What it is about.",
        "siteName": "Example",
        "imageUrl": f"{site}/cover.png",
    }
    stored = (await as_owner.data(MESSAGE, {"m": sent["id"]}))["message"]
    assert stored == {"suppressEmbeds": False, "linkPreviews": [embed]}


async def test_hostile_links_get_no_preview(stack: Stack, site: str) -> None:
    as_owner, _server, channel = await room(stack)
    async with as_owner.subscriptions() as connection:
        events = await subscribe_settled(connection, EVENTS, {"c": channel["id"]})
        links = " ".join(f"{site}{p}" for p in ("/to-other-loopback", "/to-metadata", "/loop", "/png"))
        sent = await send(as_owner, channel["id"], f"{links} http://10.0.0.1/ http://[::1]/")
        assert (await next_event(events))["__typename"] == "MessageCreated"
        await events.expect_nothing(within=4.0)
    assert (await as_owner.data(MESSAGE, {"m": sent["id"]}))["message"]["linkPreviews"] == []


async def test_suppressed_previews_come_back_on_request_and_leave_again(stack: Stack, site: str) -> None:
    as_owner, _server, channel = await room(stack)
    async with as_owner.subscriptions() as connection:
        events = await subscribe_settled(connection, EVENTS, {"c": channel["id"]})
        sent = await send(as_owner, channel["id"], f"quiet {site}/page", suppressEmbeds=True)
        assert (await next_event(events))["__typename"] == "MessageCreated"
        await events.expect_nothing(within=2.0)
        shown = await as_owner.data(SUPPRESS, {"m": sent["id"], "s": False})
        assert shown["suppressEmbeds"] == {"__typename": "Message", "suppressEmbeds": False}
        back = await next_event(events)
        assert back["__typename"] == "MessageLinkPreviewsUpdated" and len(back["linkPreviews"]) == 1
        await as_owner.data(SUPPRESS, {"m": sent["id"], "s": True})
        gone = await next_event(events)
    assert gone == {"__typename": "MessageLinkPreviewsUpdated", "messageId": sent["id"], "linkPreviews": []}


async def test_only_the_author_or_a_moderator_suppresses(stack: Stack, site: str) -> None:
    as_owner, server, channel = await room(stack)
    _bob, as_bob = await Users(stack).new("bob")
    await as_bob.data(JOIN_SERVER, {"id": server["id"]})
    sent = await send(as_owner, channel["id"], f"{site}/page")
    refused = (await as_bob.data(SUPPRESS, {"m": sent["id"], "s": True}))["suppressEmbeds"]
    assert refused == {"__typename": "PermissionError", "code": "FORBIDDEN"}


async def test_no_previews_for_an_author_without_embed_links(stack: Stack, site: str) -> None:
    as_owner, server, channel = await room(stack)
    _bob, as_bob = await Users(stack).new("bob")
    await as_bob.data(JOIN_SERVER, {"id": server["id"]})
    deny = str(int(Permission.EMBED_LINKS))
    await as_owner.data(
        OVERWRITE,
        {"i": {"channelId": channel["id"], "targetKind": "ROLE", "targetId": server["id"], "deny": deny}},
    )
    async with as_owner.subscriptions() as connection:
        events = await subscribe_settled(connection, EVENTS, {"c": channel["id"]})
        from_bob = await send(as_bob, channel["id"], f"{site}/page")
        assert (await next_event(events))["__typename"] == "MessageCreated"
        from_owner = await send(as_owner, channel["id"], f"{site}/page")  # the owner is above overwrites
        assert (await next_event(events))["__typename"] == "MessageCreated"
        update = await next_event(events)
    assert update["messageId"] == from_owner["id"]
    assert (await as_owner.data(MESSAGE, {"m": from_bob["id"]}))["message"]["linkPreviews"] == []
