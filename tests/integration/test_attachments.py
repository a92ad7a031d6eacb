"""Message attachments through the router, on both stacks and so both storage backends (embedded: local
disk; full: S3, moto's server): multipart uploads with the message or first, detected types, thumbnails,
signed downloads, access, limits, dangerous files, and the files' deletion with their message, channel
and server."""

from __future__ import annotations

import asyncio
import io
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from PIL import Image

from subgraphs.kernel.tenancy.permissions import Permission
from tests.harness.stack import Stack
from tests.integration.attachment_flows import (
    MESSAGE,
    SEND,
    community,
    get,
    key_of,
    multipart,
    png,
    send_files,
    upload_first,
)
from tests.integration.flows import create_channel, sign_up

READ = f"query($id: ID!) {{ message(id: $id) {{ {MESSAGE} }} }}"
DELETE_MESSAGE = "mutation($id: ID!) { deleteMessage(id: $id) { __typename } }"
DELETE_CHANNEL = "mutation($id: ID!) { deleteChannel(id: $id) { __typename } }"
DELETE_SERVER = """mutation($id: ID!, $name: String!) {
  deleteServer(serverId: $id, confirmName: $name) { __typename } }"""
JOIN = "mutation($id: ID!) { joinServer(serverId: $id) { __typename } }"
OVERWRITE = """mutation($i: ChannelOverwriteInput!) { setChannelOverwrite(input: $i) { __typename } }"""


async def test_files_with_the_message_then_signed_downloads_then_deletion(stack: Stack) -> None:
    client, owner, server, channel = await community(stack, "att")
    member = await sign_up(client, "reader")
    await client.with_token(member.token).data(JOIN, {"id": server["id"]})
    picture = png((1280, 640))
    notes = "a plain note ✓\n".encode() * 50

    message = await send_files(
        stack,
        owner.token,
        channel["id"],
        [("holiday.png", picture, "image/png"), ("notes.txt", notes, "text/plain")],
        content="two files",
    )
    assert message["__typename"] == "Message", message
    image, text = message["attachments"]
    assert (image["filename"], image["size"], image["contentType"]) == (
        "holiday.png",
        len(picture),
        "image/png",
    )
    assert (image["width"], image["height"]) == (1280, 640)
    assert (text["filename"], text["size"], text["contentType"]) == ("notes.txt", len(notes), "text/plain")
    assert text["width"] is None and text["thumbnailUrl"] is None
    keys = {key_of(image["url"]), key_of(image["thumbnailUrl"]), key_of(text["url"])}
    assert all(k.startswith(f"t{server['id']}/c{channel['id']}/") for k in keys)
    assert keys <= stack.stored_keys(f"t{server['id']}/")

    # A member who can view the channel gets fresh URLs; the bytes are the sender's, byte for byte.
    seen = (await client.with_token(member.token).data(READ, {"id": message["id"]}))["message"]
    served = await get(seen["attachments"][0]["url"])
    assert served.status_code == 200 and served.content == picture
    assert served.headers["content-type"] == "image/png"
    assert served.headers["content-disposition"].startswith("inline")
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in served.headers["content-security-policy"]
    note = await get(seen["attachments"][1]["url"])
    assert note.content == notes and note.headers["content-disposition"].startswith("attachment")
    assert 'filename="notes.txt"' in note.headers["content-disposition"]

    # The thumbnail: WebP within 320x320, proportions kept.
    thumb = await get(seen["attachments"][0]["thumbnailUrl"])
    preview = Image.open(io.BytesIO(thumb.content))
    assert thumb.headers["content-type"] == "image/webp"
    assert preview.format == "WEBP" and preview.size == (320, 160)

    # Deleting the message deletes its files, and its URLs stop working at once.
    urls = [
        seen["attachments"][0]["url"],
        seen["attachments"][0]["thumbnailUrl"],
        seen["attachments"][1]["url"],
    ]
    deleted = await client.with_token(owner.token).data(DELETE_MESSAGE, {"id": message["id"]})
    assert deleted["deleteMessage"]["__typename"] == "MessageDeleted"
    for url in urls:
        assert (await get(url)).status_code == 404
    assert not keys & stack.stored_keys(f"t{server['id']}/")


async def test_upload_first_then_attach_by_id(stack: Stack) -> None:
    client, owner, server, channel = await community(stack, "first")
    other = await sign_up(client, "thief")
    await client.with_token(other.token).data(JOIN, {"id": server["id"]})
    one = await upload_first(stack, owner.token, channel["id"], ("a.gif", _gif(), "image/gif"))
    two = await upload_first(stack, owner.token, channel["id"], ("b.bin", secrets.token_bytes(2000), ""))
    assert one["__typename"] == two["__typename"] == "Attachment", (one, two)
    assert (one["contentType"], one["width"], one["height"]) == ("image/gif", 40, 30)
    assert two["contentType"] == "application/octet-stream"

    # Someone else cannot send my uploads, even in the same channel.
    stolen = (
        await client.with_token(other.token).data(
            SEND, {"input": {"channelId": channel["id"], "content": "mine", "attachmentIds": [one["id"]]}}
        )
    )["sendMessage"]
    assert (stolen["__typename"], stolen["code"], stolen["field"]) == (
        "NotFoundError",
        "NOT_FOUND",
        "attachmentIds",
    )

    sent = (
        await client.with_token(owner.token).data(
            SEND,
            {"input": {"channelId": channel["id"], "content": "", "attachmentIds": [two["id"], one["id"]]}},
        )
    )["sendMessage"]
    assert sent["__typename"] == "Message", sent
    assert [a["id"] for a in sent["attachments"]] == [two["id"], one["id"]]  # in the order given
    # Attached once only.
    again = (
        await client.with_token(owner.token).data(
            SEND, {"input": {"channelId": channel["id"], "content": "x", "attachmentIds": [one["id"]]}}
        )
    )["sendMessage"]
    assert again["__typename"] == "NotFoundError"
    # Mixed: an upload by id and a file in the same request.
    three = await upload_first(stack, owner.token, channel["id"], ("c.txt", b"third", "text/plain"))
    mixed = await send_files(
        stack, owner.token, channel["id"], [("d.txt", b"fourth", "text/plain")], attachmentIds=[three["id"]]
    )
    assert [a["filename"] for a in mixed["attachments"]] == ["c.txt", "d.txt"]


async def test_a_send_retried_with_its_nonce_keeps_the_first_files_only(stack: Stack) -> None:
    client, owner, server, channel = await community(stack, "retried")
    scope = f"t{server['id']}/"
    first = await send_files(
        stack, owner.token, channel["id"], [("first.txt", b"one", "text/plain")], content="hi", nonce="n-1"
    )
    assert first["__typename"] == "Message", first
    waiting = await upload_first(stack, owner.token, channel["id"], ("later.txt", b"w", "text/plain"))
    before = stack.stored_keys(scope)

    # The retry carries other files and an upload by id: the first send stands, with its own file; the
    # retry's file is deleted and its upload still waits.
    retried = await send_files(
        stack,
        owner.token,
        channel["id"],
        [("second.txt", b"two", "text/plain")],
        content="hi",
        nonce="n-1",
        attachmentIds=[waiting["id"]],
    )
    assert retried["id"] == first["id"], retried
    assert [a["filename"] for a in retried["attachments"]] == ["first.txt"]
    assert stack.stored_keys(scope) == before
    later = (
        await client.with_token(owner.token).data(
            SEND, {"input": {"channelId": channel["id"], "content": "", "attachmentIds": [waiting["id"]]}}
        )
    )["sendMessage"]
    assert [a["filename"] for a in later["attachments"]] == ["later.txt"], later


HISTORY_FILES = """query($c: ID!) {
  messages(channelId: $c, first: 5) { edges { node { id attachments { filename } } } }
}"""


async def test_concurrent_retries_of_one_send_attach_one_requests_files(stack: Stack) -> None:
    """Retries racing with one nonce: one insert wins, the others answer with its message, and only the
    winner's file is attached (a loser of the insert race used to add its own files to the winner's)."""
    client, owner, server, channel = await community(stack, "racing")
    scope = f"t{server['id']}/"
    answers = await asyncio.gather(
        *(
            send_files(
                stack,
                owner.token,
                channel["id"],
                [(f"try{i}.txt", f"try {i}".encode(), "text/plain")],
                content="once",
                nonce="race-1",
            )
            for i in range(6)
        )
    )
    assert {a["id"] for a in answers} == {answers[0]["id"]}, answers
    history = await client.with_token(owner.token).data(HISTORY_FILES, {"c": channel["id"]})
    nodes = [e["node"] for e in history["messages"]["edges"]]
    assert len(nodes) == 1 and len(nodes[0]["attachments"]) == 1, nodes
    assert len(stack.stored_keys(scope)) == 1  # the losers' files were deleted


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (40, 30)).save(out, format="GIF")
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "declared", "detected"),
    [
        (
            "page.html",
            b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>",
            "text/html",
            "text/html",
        ),
        ("innocent.txt", b"<html><body onload=alert(1)>hi</body></html>", "text/plain", "text/html"),
        (
            "logo.svg",
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "image/svg+xml",
            "image/svg+xml",
        ),
        ("tool.exe", b"MZ\x90\x00" + b"\x00" * 200, "application/octet-stream", "application/x-msdownload"),
        (
            "run",
            b"\x7fELF\x02\x01\x01" + b"\x00" * 200,
            "application/octet-stream",
            "application/x-executable",
        ),
    ],
)
async def test_dangerous_files_are_only_ever_downloads(
    stack: Stack, name: str, content: bytes, declared: str, detected: str
) -> None:
    _client, owner, _server, channel = await community(stack, "danger")
    message = await send_files(stack, owner.token, channel["id"], [(name, content, declared)])
    attachment = message["attachments"][0]
    assert attachment["contentType"] == detected and attachment["thumbnailUrl"] is None
    served = await get(attachment["url"])
    assert served.status_code == 200 and served.content == content
    assert served.headers["content-type"] == "application/octet-stream"
    assert served.headers["content-disposition"].startswith("attachment")
    assert served.headers["x-content-type-options"] == "nosniff"
    # Asking for inline breaks the signature; and even a URL signed inline would not render it.
    parts = urlsplit(attachment["url"])
    query = dict(parse_qsl(parts.query)) | {"disp": "inline"}
    assert (await get(urlunsplit(parts._replace(query=urlencode(query))))).status_code == 403


async def test_limits_and_bad_files_are_typed_errors_and_keep_nothing(stack: Stack) -> None:
    _client, owner, server, channel = await community(stack, "limits")
    scope = f"t{server['id']}/"

    def refused(result: dict[str, Any], code: str) -> None:
        assert (result["__typename"], result["code"], result["field"]) == (
            "ValidationError",
            code,
            "files",
        ), result

    # Eleven files in one request: the router's parser stops at the tenth (BEEP_ROUTER_MAX_FILES).
    eleven = {f"files.{i}": (f"f{i}.txt", b"x", "text/plain") for i in range(11)}
    variables = {"input": {"channelId": channel["id"], "content": ""}, "files": [None] * 11}
    response = await multipart(stack, owner.token, SEND, variables, eleven)
    assert response.status_code == 400 and "Files limit exceeded: 10" in response.text, response.text
    refused(
        await send_files(stack, owner.token, channel["id"], [("empty.txt", b"", "text/plain")]), "EMPTY_FILE"
    )
    fake = ("cat.png", b"this is not a picture at all\n" * 10, "image/png")
    refused(await send_files(stack, owner.token, channel["id"], [fake]), "CONTENT_TYPE_MISMATCH")
    renamed = ("cat.jpg", b"<html><script>alert(1)</script></html>", "application/octet-stream")
    refused(await send_files(stack, owner.token, channel["id"], [renamed]), "CONTENT_TYPE_MISMATCH")
    # Together past 20 MiB (each file alone is fine, and the request passes the router's 21 MiB).
    half = 10 * 1024 * 1024 + 300 * 1024
    big = [(f"big{i}.bin", secrets.token_bytes(half), "application/octet-stream") for i in range(2)]
    refused(await send_files(stack, owner.token, channel["id"], big), "FILE_TOO_LARGE")
    # A good file beside a bad one: nothing of either is kept.
    mixed = [("ok.txt", b"fine", "text/plain"), ("empty.txt", b"", "text/plain")]
    refused(await send_files(stack, owner.token, channel["id"], mixed), "EMPTY_FILE")
    assert stack.stored_keys(scope) == set()
    # Eleven by id and file together, counted as one message's files.
    waiting = [
        await upload_first(stack, owner.token, channel["id"], (f"w{i}.txt", b"w", "text/plain"))
        for i in range(6)
    ]
    files = [(f"n{i}.txt", b"n", "text/plain") for i in range(5)]
    result = await send_files(
        stack, owner.token, channel["id"], files, attachmentIds=[w["id"] for w in waiting]
    )
    refused(result, "TOO_MANY_FILES")
    assert len(stack.stored_keys(scope)) == 6  # only the six uploads waiting


async def test_only_members_who_can_view_the_channel_get_files(stack: Stack) -> None:
    client, owner, server, channel = await community(stack, "private")
    message = await send_files(stack, owner.token, channel["id"], [("secret.txt", b"secret", "text/plain")])
    outsider = await sign_up(client, "outsider")
    hidden = await sign_up(client, "hidden")
    no_attach = await sign_up(client, "noattach")
    for account in (hidden, no_attach):
        await client.with_token(account.token).data(JOIN, {"id": server["id"]})
    owner_client = client.with_token(owner.token)
    for account, deny in ((hidden, Permission.VIEW_CHANNEL), (no_attach, Permission.ATTACH_FILES)):
        target = {"channelId": channel["id"], "targetKind": "MEMBER", "targetId": account.user_id}
        result = await owner_client.data(OVERWRITE, {"i": {**target, "deny": str(int(deny))}})
        assert result["setChannelOverwrite"]["__typename"] == "Channel", result

    for account in (outsider, hidden):
        assert (await client.with_token(account.token).data(READ, {"id": message["id"]}))["message"] is None
        denied = await upload_first(stack, account.token, channel["id"], ("x.txt", b"x", "text/plain"))
        assert (denied["__typename"], denied["code"]) == ("NotFoundError", "NOT_FOUND")
        sent = await send_files(stack, account.token, channel["id"], [("x.txt", b"x", "text/plain")])
        assert sent["__typename"] == "NotFoundError"
    # Can read, cannot attach: sees the files, may not add any.
    seen = (await client.with_token(no_attach.token).data(READ, {"id": message["id"]}))["message"]
    assert seen["attachments"][0]["filename"] == "secret.txt"
    denied = await send_files(stack, no_attach.token, channel["id"], [("x.txt", b"x", "text/plain")])
    assert (denied["__typename"], denied["code"]) == ("PermissionError", "FORBIDDEN")
    assert len(stack.stored_keys(f"t{server['id']}/")) == 1


async def test_signed_urls_expire_and_resist_tampering(stack: Stack) -> None:
    from media.signing import UrlSigner

    _client, owner, server, channel = await community(stack, "signed")
    message = await send_files(stack, owner.token, channel["id"], [("a.txt", b"aaaa", "text/plain")])
    other = await send_files(stack, owner.token, channel["id"], [("b.txt", b"bbbb", "text/plain")])
    url = message["attachments"][0]["url"]
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    assert 0 < int(query["exp"]) - __import__("time").time() <= 300 + 60  # 5 minutes, rounded up to a minute

    def changed(**params: str) -> str:
        return urlunsplit(parts._replace(query=urlencode(query | params)))

    for tampered in (
        changed(sig=query["sig"][:-2] + ("AA" if not query["sig"].endswith("AA") else "BB")),
        changed(exp=str(int(query["exp"]) + 3600)),
        changed(fn="other.txt"),
        urlunsplit(parts._replace(path=urlsplit(other["attachments"][0]["url"]).path)),  # another file's key
        urlunsplit(parts._replace(query="")),
    ):
        response = await get(tampered)
        assert response.status_code == 403 and response.json()["code"] == "SIGNATURE_INVALID", tampered
    # An authentic URL that has expired: signed with the stack's key by a clock in 2001.
    spec = (stack.workdir / "data" / "media-signing-keys").read_text().strip()
    signer = UrlSigner.from_spec(spec, base_url=url.split("/files/", 1)[0] + "/files", clock=lambda: 1e9)
    stale = await get(signer.sign(key_of(url), 60, "attachment"))
    assert stale.status_code == 403 and stale.json()["code"] == "SIGNATURE_EXPIRED"
    assert (await get(url)).content == b"aaaa"
    assert server  # the community is kept until the end of the session


async def test_deleting_a_channel_or_the_server_deletes_their_files(stack: Stack) -> None:
    client, owner, server, first = await community(stack, "purge")
    second = await create_channel(client.with_token(owner.token), server["id"], "second")
    in_first = await send_files(stack, owner.token, first["id"], [("p.png", png((64, 64)), "image/png")])
    in_second = await send_files(stack, owner.token, second["id"], [("q.txt", b"q", "text/plain")])
    waiting = await upload_first(stack, owner.token, first["id"], ("w.txt", b"waiting", "text/plain"))
    scope = f"t{server['id']}/"
    assert len(stack.stored_keys(scope)) == 4  # the picture, its thumbnail, q.txt, w.txt

    owner_client = client.with_token(owner.token)
    result = await owner_client.data(DELETE_CHANNEL, {"id": first["id"]})
    assert result["deleteChannel"]["__typename"] == "ChannelDeleted", result
    assert stack.stored_keys(scope) == {key_of(in_second["attachments"][0]["url"])}
    for url in (in_first["attachments"][0]["url"], waiting["url"]):
        assert (await get(url)).status_code == 404
    assert (await get(in_second["attachments"][0]["url"])).status_code == 200

    result = await owner_client.data(DELETE_SERVER, {"id": server["id"], "name": server["name"]})
    assert result["deleteServer"]["__typename"] == "ServerDeletion", result
    assert stack.stored_keys(scope) == set()
    assert (await get(in_second["attachments"][0]["url"])).status_code == 404


async def test_live_message_events_carry_attachments(stack: Stack) -> None:
    from tests.integration.flows import subscribe_settled

    client, owner, _server, channel = await community(stack, "live")
    query = """subscription($c: ID!) { messageEvents(channelId: $c) {
      __typename ... on MessageCreated { message { id attachments { filename url } } } } }"""
    async with client.with_token(owner.token).subscriptions() as connection:
        stream = await subscribe_settled(connection, query, {"c": channel["id"]})
        sent = await send_files(stack, owner.token, channel["id"], [("live.txt", b"live", "text/plain")])
        event = await stream.next(timeout=10)
    assert event["type"] == "next", event
    created = event["payload"]["data"]["messageEvents"]["message"]
    assert created["id"] == sent["id"] and created["attachments"][0]["filename"] == "live.txt"
    assert (await get(created["attachments"][0]["url"])).content == b"live"
