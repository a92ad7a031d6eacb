"""Files and link previews on webhook messages, through the router on both stacks (embedded: files on local
disk; full: S3, moto's server): Discord's multipart execute form (`payload_json` + `files[n]`), the
message attachments' limits with nothing stored when a request is refused, `?wait=true` in Discord's
shape, downloads for members only, and previews of a webhook's links (live, and turned off by taking Embed
Links from @everyone, or by Discord's SUPPRESS_EMBEDS flag)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from subgraphs.kernel.tenancy.permissions import Permission
from tests.harness.client import Operation
from tests.harness.preview_site import serve_preview_site
from tests.harness.stack import Stack
from tests.integration.attachment_flows import get, key_of, png
from tests.integration.flows import create_channel, sign_up, subscribe_settled
from tests.integration.webhook_flows import base_url, create_webhook, setup

ATTACHMENT = "id filename size contentType width height url thumbnailUrl"
READ = f"""query($id: ID!) {{ message(id: $id) {{ id content webhook {{ name }}
  attachments {{ {ATTACHMENT} }} }} }}"""
DELETE = "mutation($id: ID!) { deleteMessage(id: $id) { __typename } }"
HISTORY = "query($c: ID!) { messages(channelId: $c) { edges { node { id } } } }"
PREVIEWS = "linkPreviews { url title }"
EVENTS = f"""subscription($c: ID!) {{ messageEvents(channelId: $c) {{ __typename
  ... on MessageCreated {{ message {{ id content webhook {{ name }} attachments {{ {ATTACHMENT} }} }} }}
  ... on MessageLinkPreviewsUpdated {{ messageId {PREVIEWS} }} }} }}"""
PREVIEWED = f"query($m: ID!) {{ message(id: $m) {{ suppressEmbeds {PREVIEWS} }} }}"
OVERWRITE = """mutation($i: ChannelOverwriteInput!) { setChannelOverwrite(input: $i) { __typename } }"""

Part = tuple[str, tuple[str, bytes, str]]


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_preview_site() as origin:
        yield origin


async def execute(
    stack: Stack,
    path: str,
    payload: Any,
    files: list[Part],
    *,
    raw_payload: str | None = None,
    query: str = "",
) -> httpx.Response:
    """Discord's multipart execute form, as discord.py and discord.js send it; like them, on 429 it waits
    Retry-After and sends again (the limit is counted before the files are checked)."""
    form = {"payload_json": raw_payload if raw_payload is not None else json.dumps(payload)}
    async with httpx.AsyncClient(timeout=120) as http:
        while True:
            response = await http.post(f"{base_url(stack)}{path}{query}", data=form, files=files)
            if response.status_code != 429:
                return response
            await asyncio.sleep(float(response.headers["retry-after"]))


def file_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert (response.status_code, body["code"], body.get("field")) == (status, code, "files"), body
    return body


def refused_as(response: httpx.Response, kind: str) -> None:
    body = file_error(response, 400, 50035)
    assert body["errors"]["files"]["_errors"][0]["code"] == kind, body


async def next_event(operation: Operation, timeout: float = 20) -> dict[str, Any]:
    message = await operation.next(timeout)
    assert message["type"] == "next" and "errors" not in message["payload"], message
    event: dict[str, Any] = message["payload"]["data"]["messageEvents"]
    return event


async def test_files_on_a_webhook_execution_reach_members(stack: Stack) -> None:
    anonymous, _owner, _bob, as_owner, as_bob, server, channel = await setup(stack)
    created = await create_webhook(as_owner, channel["id"], "Build bot")
    path = f"/webhooks/{created['webhook']['id']}/{created['token']}"
    picture = png((640, 320))
    report = b"all 1,204 tests passed\n" * 20

    async with as_bob.subscriptions() as connection:
        events = await subscribe_settled(connection, EVENTS, {"c": channel["id"]})
        # When Discord tooling posts two files with `?wait=true`
        response = await execute(
            stack,
            path,
            {"content": "build #42", "username": "CI"},
            [
                ("files[0]", ("screenshot.png", picture, "image/png")),
                ("files[1]", ("report.txt", report, "text/plain")),
            ],
            query="?wait=true",
        )
        # Then the message comes back in Discord's shape, with its attachments
        assert response.status_code == 200, response.text
        sent = response.json()
        assert (sent["content"], sent["author"]["username"], sent["author"]["bot"]) == (
            "build #42",
            "CI",
            True,
        )
        image, text = sent["attachments"]
        assert (image["filename"], image["size"], image["content_type"]) == (
            "screenshot.png",
            len(picture),
            "image/png",
        )
        assert (image["width"], image["height"]) == (640, 320)
        assert (text["filename"], text["size"], text["content_type"]) == (
            "report.txt",
            len(report),
            "text/plain",
        )
        assert "width" not in text and text["proxy_url"] == text["url"]
        assert (await get(text["url"])).content == report  # the sender's own files, byte for byte

        # And subscribers get it live with its attachments
        live = (await next_event(events))["message"]
    assert live["id"] == sent["id"] and live["webhook"] == {"name": "CI"}
    assert [a["filename"] for a in live["attachments"]] == ["screenshot.png", "report.txt"]

    # A member reads it through the router: sizes, a thumbnail, downloads by signed URL
    seen = (await as_bob.data(READ, {"id": sent["id"]}))["message"]
    shot = seen["attachments"][0]
    assert (shot["width"], shot["height"], shot["contentType"]) == (640, 320, "image/png")
    assert shot["thumbnailUrl"] is not None
    thumb = await get(shot["thumbnailUrl"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    download = await get(shot["url"])
    assert download.status_code == 200 and download.content == picture
    keys = {key_of(shot["url"]), key_of(shot["thumbnailUrl"]), key_of(seen["attachments"][1]["url"])}
    assert all(k.startswith(f"t{server['id']}/c{channel['id']}/") for k in keys)
    assert stack.stored_keys(f"t{server['id']}/") == keys

    # Someone outside the server gets neither the message nor any URL to its files
    stranger = await sign_up(anonymous, "stranger")
    assert (await anonymous.with_token(stranger.token).data(READ, {"id": sent["id"]}))["message"] is None

    # Files only (no content), Discord's other part names, no `wait`: 204; dangerous types are downloads
    page = b"<!doctype html><html><script>alert(1)</script></html>"
    response = await execute(
        stack,
        path,
        {},
        [("file", ("page.html", page, "text/html")), ("file1", ("b.txt", b"b", "text/plain"))],
    )
    assert response.status_code == 204, response.text
    history = (await as_owner.data(HISTORY, {"c": channel["id"]}))["messages"]["edges"]
    latest = max((edge["node"]["id"] for edge in history), key=int)
    files_only = (await as_owner.data(READ, {"id": latest}))["message"]
    assert files_only["content"] == "" and files_only["webhook"] == {"name": "Build bot"}
    html = files_only["attachments"][0]
    assert (html["filename"], html["contentType"]) == ("page.html", "text/html")
    served = await get(html["url"])
    assert served.headers["content-type"] == "application/octet-stream"
    assert served.headers["content-disposition"].startswith("attachment")

    # Deleting a webhook's message (Manage Messages) deletes its files, as a member's
    deleted = await as_owner.data(DELETE, {"id": sent["id"]})
    assert deleted["deleteMessage"]["__typename"] == "MessageDeleted", deleted
    left = stack.stored_keys(f"t{server['id']}/")
    assert not keys & left and key_of(html["url"]) in left


async def test_refused_webhook_files_store_nothing(stack: Stack) -> None:
    _anonymous, _owner, _bob, as_owner, _as_bob, server, channel = await setup(stack)
    created = await create_webhook(as_owner, channel["id"])
    path = f"/webhooks/{created['webhook']['id']}/{created['token']}"
    scope = f"t{server['id']}/"
    ok = ("files[0]", ("ok.txt", b"fine", "text/plain"))

    # Eleven files, or many more: at most ten per message, as for members
    for count in (11, 30):
        many = [(f"files[{i}]", (f"f{i}.txt", b"x", "text/plain")) for i in range(count)]
        refused_as(await execute(stack, path, {"content": "x"}, many), "TOO_MANY_FILES")
    # An empty file beside a good one: neither is kept
    empty = ("files[1]", ("empty.txt", b"", "text/plain"))
    refused_as(await execute(stack, path, {"content": "x"}, [ok, empty]), "EMPTY_FILE")
    # A file presented as an image that is not one, after a good one
    fake = ("files[1]", ("cat.png", b"this is not a picture at all\n" * 10, "image/png"))
    refused_as(await execute(stack, path, {"content": "x"}, [ok, fake]), "CONTENT_TYPE_MISMATCH")
    # Together past 20 MiB (each file alone is fine; the request passes the router's 21 MiB)
    half = 10 * 1024 * 1024 + 300 * 1024
    big = [
        (f"files[{i}]", (f"big{i}.bin", secrets.token_bytes(half), "application/octet-stream"))
        for i in range(2)
    ]
    body = file_error(await execute(stack, path, {"content": "x"}, big), 413, 40005)
    assert "20 MiB" in body["message"], body
    # A part name Discord does not use for files
    odd = [("attachment", ("a.txt", b"a", "text/plain"))]
    refused_as(await execute(stack, path, {"content": "x"}, odd), "BASE_TYPE_BAD_TYPE")
    # A malformed payload_json, a payload breaking a rule
    response = await execute(stack, path, None, [ok], raw_payload="{not json")
    assert (response.status_code, response.json()["code"], response.json()["field"]) == (
        400,
        50035,
        "payload_json",
    )
    response = await execute(stack, path, {"content": "x" * 2001}, [ok])
    assert (response.status_code, response.json()["field"]) == (400, "content"), response.text
    # A wrong token, an unknown webhook: 401, and nothing stored
    response = await execute(
        stack, f"/webhooks/{created['webhook']['id']}/{'x' * 64}", {"content": "x"}, [ok]
    )
    assert (response.status_code, response.json()["code"]) == (401, 50027)
    response = await execute(stack, f"/webhooks/1234567/{created['token']}", {"content": "x"}, [ok])
    assert response.status_code == 401

    assert stack.stored_keys(scope) == set()
    assert (await as_owner.data(HISTORY, {"c": channel["id"]}))["messages"]["edges"] == []


async def test_a_webhook_message_gets_link_previews_unless_everyone_lacks_embed_links(
    stack: Stack, site: str
) -> None:
    _anonymous, _owner, _bob, as_owner, _as_bob, server, channel = await setup(stack)
    created = await create_webhook(as_owner, channel["id"], "Linker")
    path = f"/webhooks/{created['webhook']['id']}/{created['token']}"

    async def post(payload: dict[str, Any]) -> str:
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(f"{base_url(stack)}{path}?wait=true", json=payload)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    async def previews(message_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await as_owner.data(PREVIEWED, {"m": message_id}))["message"][
            "linkPreviews"
        ]
        return found

    async with as_owner.subscriptions() as connection:
        events = await subscribe_settled(connection, EVENTS, {"c": channel["id"]})
        # A webhook's link is previewed, live
        first = await post({"content": f"deployed: {site}/page"})
        assert (await next_event(events))["__typename"] == "MessageCreated"
        update = await next_event(events)
        assert update == {
            "__typename": "MessageLinkPreviewsUpdated",
            "messageId": first,
            "linkPreviews": [{"url": f"{site}/page", "title": "A page & its title"}],
        }
        # Discord's SUPPRESS_EMBEDS flag: no preview
        quiet = await post({"content": f"quiet {site}/page", "flags": 4})
        assert (await next_event(events))["__typename"] == "MessageCreated"
        await events.expect_nothing(within=3.0)

        # Embed Links taken from @everyone in the channel: a webhook has no other permissions
        deny = str(int(Permission.EMBED_LINKS))
        target = {"channelId": channel["id"], "targetKind": "ROLE", "targetId": server["id"]}
        result = await as_owner.data(OVERWRITE, {"i": {**target, "deny": deny}})
        assert result["setChannelOverwrite"]["__typename"] == "Channel", result
        denied = await post({"content": f"denied {site}/page"})
        assert (await next_event(events))["__typename"] == "MessageCreated"
        await events.expect_nothing(within=4.0)
    assert await previews(first) != []
    assert await previews(quiet) == [] and await previews(denied) == []

    # A channel hidden from @everyone (staff only) still previews its webhook's links: View Channel is
    # not needed, Embed Links is
    staff = await create_channel(as_owner, server["id"], "staff")
    hidden = {"channelId": staff["id"], "targetKind": "ROLE", "targetId": server["id"]}
    result = await as_owner.data(OVERWRITE, {"i": {**hidden, "deny": str(int(Permission.VIEW_CHANNEL))}})
    assert result["setChannelOverwrite"]["__typename"] == "Channel", result
    staff_hook = await create_webhook(as_owner, staff["id"], "Alerts")
    path = f"/webhooks/{staff_hook['webhook']['id']}/{staff_hook['token']}"
    async with as_owner.subscriptions() as connection:
        events = await subscribe_settled(connection, EVENTS, {"c": staff["id"]})
        alert = await post({"content": f"alert {site}/page"})
        assert (await next_event(events))["__typename"] == "MessageCreated"
        update = await next_event(events)
    assert update["messageId"] == alert and len(update["linkPreviews"]) == 1
