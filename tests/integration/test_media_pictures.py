"""Profile and server pictures through the router: GraphQL multipart uploads, re-encoding, signed URLs,
replacement and deletion of the stored objects, and what is refused (type, size, permission, CSRF)."""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import AsyncIterator, Awaitable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from PIL import Image

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import Account, create_server, sign_up, unique

PREFLIGHT = {"GraphQL-Require-Preflight": "true"}
PROFILE = "... on ProfilePayload { user { id avatarUrl bannerUrl } } ... on UserError { code message field }"
SET_AVATAR = f"mutation($file: Upload!) {{ setAvatar(file: $file) {{ __typename {PROFILE} }} }}"
SET_BANNER = f"mutation($file: Upload!) {{ setBanner(file: $file) {{ __typename {PROFILE} }} }}"
REMOVE_AVATAR = f"mutation {{ removeAvatar {{ __typename {PROFILE} }} }}"
SERVER = "... on Server { id pictureUrl bannerUrl } ... on UserError { code message field }"
SET_SERVER_PICTURE = f"""mutation($id: ID!, $file: Upload!) {{
  setServerPicture(serverId: $id, file: $file) {{ __typename {SERVER} }} }}"""
SET_SERVER_BANNER = f"""mutation($id: ID!, $file: Upload!) {{
  setServerBanner(serverId: $id, file: $file) {{ __typename {SERVER} }} }}"""
REMOVE_SERVER_PICTURE = (
    f"mutation($id: ID!) {{ removeServerPicture(serverId: $id) {{ __typename {SERVER} }} }}"
)
DELETE_SERVER = """mutation($id: ID!, $name: String!) {
  deleteServer(serverId: $id, confirmName: $name) { __typename ... on UserError { code } } }"""
AUDIT = """query($id: ID!) { auditLog(serverId: $id, first: 5) { action changes { field } } }"""
SIGN_UP_WITH_AVATAR = """mutation($input: SignUpInput!, $avatar: Upload) {
  signUp(input: $input, avatar: $avatar) {
    __typename ... on AuthPayload { user { id avatarUrl } } ... on UserError { code message field } } }"""


def photo(size: tuple[int, int], fmt: str = "JPEG", *, exif: bool = True) -> bytes:
    """A real image made here: a gradient, with EXIF (camera, GPS-ish comment) when asked."""
    image = Image.new("RGB", size)
    image.putdata(
        [(x * 255 // size[0], y * 255 // size[1], 128) for y in range(size[1]) for x in range(size[0])]
    )
    out = io.BytesIO()
    if exif:
        tags = Image.Exif()
        tags[0x010F] = "BeepCam"  # Make
        tags[0x9286] = "secret location 48.85N 2.35E"  # UserComment
        image.save(out, format=fmt, exif=tags)
    else:
        image.save(out, format=fmt)
    return out.getvalue()


async def upload(
    stack: Stack,
    token: str | None,
    query: str,
    variables: dict[str, Any],
    files: dict[str, tuple[str, bytes, str]],
    headers: dict[str, str] | None = None,
    *,
    url: str | None = None,
    chunked: bool = False,
) -> httpx.Response:
    """A GraphQL multipart request (jaydenseric's spec) to the router: operations, map, then the files.
    `chunked`: streamed without a Content-Length, so only the parser's own limits can stop it."""
    sent = dict(PREFLIGHT if headers is None else headers)
    if token:
        sent["authorization"] = f"Bearer {token}"
    if url is not None:  # a subgraph, reached directly as Beep's own processes may
        sent |= stack.internal_headers
    names = {path: str(i) for i, path in enumerate(files)}
    form = {
        "operations": json.dumps({"query": query, "variables": variables}),
        "map": json.dumps({index: [f"variables.{path}"] for path, index in names.items()}),
    }
    parts = {names[path]: spec for path, spec in files.items()}
    async with httpx.AsyncClient(timeout=60) as http:
        request = http.build_request("POST", url or stack.router_url, data=form, files=parts, headers=sent)
        if not chunked:
            return await http.send(request)
        body = request.read()

        async def pieces() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 1 << 20):
                yield body[start : start + (1 << 20)]

        headers = {**sent, "content-type": request.headers["content-type"]}
        return await http.post(url or stack.router_url, content=pieces(), headers=headers)


async def send_file(
    stack: Stack, token: str, query: str, field: str, file: tuple[str, bytes, str], **variables: Any
) -> dict[str, Any]:
    """A mutation whose `$file` is uploaded; its payload."""
    return payload(await upload(stack, token, query, {**variables, "file": None}, {"file": file}), field)


def payload(response: httpx.Response, field: str) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == 200 and not body.get("errors"), (response.status_code, body)
    result: dict[str, Any] = body["data"][field]
    return result


async def download(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.get(url)


def key_of(url: str) -> str:
    """The storage key in a signed URL: .../files/<scope>/<object id>?..."""
    return urlsplit(url).path.split("/files/", 1)[1]


def stored(stack: Stack, key: str) -> bool:
    return key in stack.stored_keys(key)


async def test_avatar_upload_is_reencoded_served_and_replaced(stack: Stack) -> None:
    client = GraphQLClient(stack.router_url)
    me = await sign_up(client, "pic")
    original = photo((1200, 800))
    assert b"BeepCam" in original

    result = await send_file(stack, me.token, SET_AVATAR, "setAvatar", ("me.jpg", original, "image/jpeg"))
    assert result["__typename"] == "ProfilePayload", result
    url = result["user"]["avatarUrl"]
    assert url and "sig=" in url

    response = await download(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/webp"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"].startswith("inline")
    assert "max-age=" in response.headers["cache-control"]
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "WEBP"
    assert image.size == (512, 341)  # shrunk to fit 512x512, aspect kept
    assert (
        not image.getexif()
        and b"BeepCam" not in response.content
        and b"secret location" not in response.content
    )

    # Others see the same picture through User.
    other = await sign_up(client, "viewer")
    seen = await client.with_token(other.token).data(
        "query($id: ID!) { user(id: $id) { avatarUrl } }", {"id": me.user_id}
    )
    assert key_of(seen["user"]["avatarUrl"]) == key_of(url)

    # Replacing deletes the old object; removing deletes the new one.
    first_key = key_of(url)
    assert stored(stack, first_key)
    replaced = await send_file(
        stack, me.token, SET_AVATAR, "setAvatar", ("b.png", photo((64, 64), "PNG", exif=False), "image/png")
    )
    second_key = key_of(replaced["user"]["avatarUrl"])
    assert second_key != first_key and stored(stack, second_key)
    assert not stored(stack, first_key)
    assert (await download(url)).status_code == 404  # a valid URL to a deleted object

    removed = await client.with_token(me.token).data(REMOVE_AVATAR)
    assert removed["removeAvatar"]["user"]["avatarUrl"] is None
    assert not stored(stack, second_key)


async def test_banner_is_bounded_to_1920x1080(stack: Stack) -> None:
    me = await sign_up(GraphQLClient(stack.router_url), "banner")
    result = await send_file(
        stack,
        me.token,
        SET_BANNER,
        "setBanner",
        ("wide.png", photo((2400, 900), "PNG", exif=False), "image/png"),
    )
    response = await download(result["user"]["bannerUrl"])
    assert Image.open(io.BytesIO(response.content)).size == (1920, 720)


async def test_sign_up_with_an_avatar(stack: Stack) -> None:
    username = unique("signup")
    variables = {
        "input": {
            "firstName": "Ada",
            "lastName": "Pic",
            "username": username,
            "email": f"{username}@example.test",
            "password": f"pw-{secrets.token_hex(8)}",
        },
        "avatar": None,
    }
    response = await upload(
        stack, None, SIGN_UP_WITH_AVATAR, variables, {"avatar": ("a.gif", _gif(), "image/gif")}
    )
    result = payload(response, "signUp")
    assert result["__typename"] == "AuthPayload", result
    picture = await download(result["user"]["avatarUrl"])
    assert picture.status_code == 200 and Image.open(io.BytesIO(picture.content)).size == (40, 30)

    # A refused picture creates no account.
    variables["input"] |= {"username": unique("nope"), "email": f"{unique('nope')}@example.test"}
    refused = payload(
        await upload(
            stack, None, SIGN_UP_WITH_AVATAR, variables, {"avatar": ("a.png", b"not an image", "image/png")}
        ),
        "signUp",
    )
    assert (refused["__typename"], refused["code"], refused["field"]) == (
        "ValidationError",
        "UNSUPPORTED_IMAGE_TYPE",
        "avatar",
    )


def _gif() -> bytes:
    frames = [Image.new("P", (40, 30), color) for color in (1, 2, 3)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    return out.getvalue()


async def test_tampered_and_expired_urls_are_refused(stack: Stack) -> None:
    me = await sign_up(GraphQLClient(stack.router_url), "tamper")
    result = await send_file(
        stack, me.token, SET_AVATAR, "setAvatar", ("a.png", photo((32, 32), "PNG"), "image/png")
    )
    url = result["user"]["avatarUrl"]
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))

    def variant(**changes: str) -> str:
        return urlunsplit(parts._replace(query=urlencode(query | changes)))

    flipped = query["sig"][:-1] + ("A" if query["sig"][-1] != "A" else "B")
    for bad in (variant(sig=flipped), variant(exp=str(int(query["exp"]) + 3600)), variant(exp="1000000000")):
        response = await download(bad)
        assert response.status_code == 403, bad
        assert response.json()["code"] == "SIGNATURE_INVALID"
    other_key = parts.path.rsplit("/", 1)[0] + "/" + "0" * 32
    assert (await download(urlunsplit(parts._replace(path=other_key)))).status_code == 403
    unsigned = urlunsplit(parts._replace(query=""))
    assert (await download(unsigned)).status_code == 403


async def test_expired_url_is_refused(stack: Stack) -> None:
    """An authentic URL past its expiry: signed with the stack's own key, by a clock in 2001."""
    from media.signing import UrlSigner

    me = await sign_up(GraphQLClient(stack.router_url), "expired")
    result = await send_file(
        stack, me.token, SET_AVATAR, "setAvatar", ("a.png", photo((32, 32), "PNG"), "image/png")
    )
    url = result["user"]["avatarUrl"]
    base = url.split("/files/", 1)[0] + "/files"
    spec = (stack.workdir / "data" / "media-signing-keys").read_text().strip()
    signer = UrlSigner.from_spec(spec, base_url=base, clock=lambda: 1_000_000_000.0)
    stale = signer.sign(key_of(url), 60, "inline")
    response = await download(stale)
    assert response.status_code == 403 and response.json()["code"] == "SIGNATURE_EXPIRED"


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("notes.png", b"just some text, renamed to .png\n" * 20, "UNSUPPORTED_IMAGE_TYPE"),
        ("page.png", b"<html><script>alert(1)</script></html>", "UNSUPPORTED_IMAGE_TYPE"),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "IMAGE_UNDECODABLE"),
    ],
)
async def test_non_images_are_refused_with_their_code(
    stack: Stack, name: str, content: bytes, code: str
) -> None:
    me = await sign_up(GraphQLClient(stack.router_url), "bad")
    before = _all_objects(stack)
    result = await send_file(stack, me.token, SET_AVATAR, "setAvatar", (name, content, "image/png"))
    assert (result["__typename"], result["code"], result["field"]) == ("ValidationError", code, "file")
    assert _all_objects(stack) == before  # nothing kept


def _all_objects(stack: Stack) -> set[str]:
    return stack.stored_keys()


async def test_oversized_uploads_are_refused(stack: Stack) -> None:
    me = await sign_up(GraphQLClient(stack.router_url), "big")
    # 9 MiB: through the router (10 MiB a file) but past the avatar's 8 MiB.
    nine = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(9 * 1024 * 1024)
    result = await send_file(stack, me.token, SET_AVATAR, "setAvatar", ("big.png", nine, "image/png"))
    assert (result["__typename"], result["code"]) == ("ValidationError", "FILE_TOO_LARGE")
    # 27 MiB: the router refuses it before any subgraph sees it (20 MiB a file: message attachments).
    over = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(27 * 1024 * 1024)
    response = await upload(
        stack, me.token, SET_BANNER, {"file": None}, {"file": ("huge.png", over, "image/png")}
    )
    assert response.status_code == 413, response.text
    # The same without a Content-Length: the router's parser stops at 20 MiB, and the users subgraph
    # (reached directly) at 11 MiB. Either answers 413 and closes the connection; a client still writing
    # may see the connection cut before it reads the answer (a loaded machine, CI): refused either way,
    # and nothing was stored.
    huge = {"file": ("huge.png", over, "image/png")}
    assert await refused(upload(stack, me.token, SET_BANNER, {"file": None}, huge, chunked=True))
    twelve = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(12 * 1024 * 1024)
    huge = {"file": ("huge.png", twelve, "image/png")}
    direct = stack.subgraph_urls["users"]
    assert await refused(upload(stack, me.token, SET_BANNER, {"file": None}, huge, url=direct, chunked=True))
    profile = await GraphQLClient(stack.router_url, me.token).data("{ me { bannerUrl } }")
    assert profile["me"]["bannerUrl"] is None
    # A decompression bomb: a tiny file that claims 20,000 x 20,000 pixels.
    bomb = _png_header_claiming(20_000, 20_000)
    result = await send_file(stack, me.token, SET_AVATAR, "setAvatar", ("bomb.png", bomb, "image/png"))
    assert (result["__typename"], result["code"]) == ("ValidationError", "IMAGE_DIMENSIONS_TOO_LARGE")


async def refused(sending: Awaitable[httpx.Response]) -> bool:
    """True when an upload was refused: a 413, or the connection cut while the body was still sent."""
    try:
        response = await sending
    except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
        return True
    assert response.status_code == 413, response.text
    return True


def _png_header_claiming(width: int, height: int) -> bytes:
    image = Image.new("1", (width, height))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


async def test_cross_site_form_posts_cannot_upload(stack: Stack) -> None:
    """What an HTML form on another site can send: multipart, no custom header. Refused at the router
    and at the subgraph (in case someone reaches it directly)."""
    me = await sign_up(GraphQLClient(stack.router_url), "csrf")
    files = {"file": ("a.png", photo((16, 16), "PNG"), "image/png")}
    response = await upload(
        stack, me.token, SET_AVATAR, {"file": None}, files, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    direct = stack.subgraph_urls["users"]
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            direct,
            data={
                "operations": json.dumps({"query": SET_AVATAR, "variables": {"file": None}}),
                "map": '{"0": ["variables.file"]}',
            },
            files={"0": files["file"]},
            # From a caller holding the internal credential: refused for the missing preflight header
            headers={"authorization": f"Bearer {me.token}", **stack.internal_headers},
        )
    assert response.status_code == 403 and "preflight" in response.text, response.text


async def test_server_pictures_managers_only_audited_and_deleted_with_the_server(stack: Stack) -> None:
    client = GraphQLClient(stack.router_url)
    owner = await sign_up(client, "owner")
    server = await create_server(client.with_token(owner.token), name="Pictured")
    member: Account = await sign_up(client, "member")
    await client.with_token(member.token).data(
        "mutation($id: ID!) { joinServer(serverId: $id) { __typename } }", {"id": server["id"]}
    )
    before = _all_objects(stack)

    # A member without Manage Server cannot, and nothing is stored for the attempt.
    picture = ("p.jpg", photo((800, 800)), "image/jpeg")
    denied = await send_file(
        stack, member.token, SET_SERVER_PICTURE, "setServerPicture", picture, id=server["id"]
    )
    assert (denied["__typename"], denied["code"]) == ("PermissionError", "FORBIDDEN")
    assert _all_objects(stack) == before

    result = await send_file(
        stack, owner.token, SET_SERVER_PICTURE, "setServerPicture", picture, id=server["id"]
    )
    assert result["__typename"] == "Server", result
    first = key_of(result["pictureUrl"])
    assert first.startswith(f"t{server['id']}/")
    served = await download(result["pictureUrl"])
    assert Image.open(io.BytesIO(served.content)).size == (512, 512)

    # Members see it.
    seen = await client.with_token(member.token).data(
        "query($id: ID!) { server(id: $id) { pictureUrl } }", {"id": server["id"]}
    )
    assert key_of(seen["server"]["pictureUrl"]) == first

    replaced = await send_file(
        stack,
        owner.token,
        SET_SERVER_PICTURE,
        "setServerPicture",
        ("q.png", photo((100, 50), "PNG"), "image/png"),
        id=server["id"],
    )
    second = key_of(replaced["pictureUrl"])
    assert not stored(stack, first) and stored(stack, second)
    banner = await send_file(
        stack,
        owner.token,
        SET_SERVER_BANNER,
        "setServerBanner",
        ("b.png", photo((3000, 1000), "PNG"), "image/png"),
        id=server["id"],
    )
    banner_key = key_of(banner["bannerUrl"])

    log = await client.with_token(owner.token).data(AUDIT, {"id": server["id"]})
    fields = [c["field"] for entry in log["auditLog"] for c in entry["changes"]]
    assert "picture" in fields and "banner" in fields

    # Removing, then deleting the server: its files go.
    removed = await client.with_token(owner.token).data(REMOVE_SERVER_PICTURE, {"id": server["id"]})
    assert removed["removeServerPicture"]["pictureUrl"] is None
    assert not stored(stack, second)
    again = await send_file(
        stack, owner.token, SET_SERVER_PICTURE, "setServerPicture", picture, id=server["id"]
    )
    third = key_of(again["pictureUrl"])
    deleted = await client.with_token(owner.token).data(
        DELETE_SERVER, {"id": server["id"], "name": "Pictured"}
    )
    assert deleted["deleteServer"]["__typename"] == "ServerDeletion", deleted
    assert not stored(stack, third) and not stored(stack, banner_key)
    assert not stack.stored_keys(f"t{server['id']}/")
