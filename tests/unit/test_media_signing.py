"""Signed download URLs, and the download app driven over HTTP (httpx + ASGI) on a real temp directory."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from media.app import create_media_app
from media.errors import InvalidKey, MediaErrorCode, SignatureExpired, SignatureInvalid
from media.signing import UrlSigner, generate_secret, safe_filename
from media.storage import LocalDiskStorage, StoredObject

SECRET = b"s" * 32
OTHER_SECRET = b"o" * 32
KEY = "t1/0123456789abcdef0123456789abcdef"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def signer(clock: Clock) -> UrlSigner:
    return UrlSigner({"k1": SECRET}, "k1", clock=clock)


def split(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    assert parts.path.startswith("/files/")
    return parts.path.removeprefix("/files/"), dict(parse_qsl(parts.query, keep_blank_values=True))


# --- the signer ------------------------------------------------------------------------------------


def test_a_signed_url_verifies_and_carries_its_grant(signer: UrlSigner, clock: Clock) -> None:
    key, params = split(signer.sign(KEY, 300, "inline", filename="cat.png"))

    grant = signer.verify(key, params)

    assert key == KEY and params["kid"] == "k1"
    assert (grant.key, grant.disposition, grant.filename) == (KEY, "inline", "cat.png")
    assert grant.expires_at == clock.now + 300 and grant.remaining_seconds == 300


def test_disposition_defaults_to_attachment(signer: UrlSigner) -> None:
    grant = signer.verify(*split(signer.sign(KEY, timedelta(minutes=5))))
    assert grant.disposition == "attachment" and grant.filename is None


def test_a_url_expires(signer: UrlSigner, clock: Clock) -> None:
    key, params = split(signer.sign(KEY, 60))
    clock.now += 59.5
    assert signer.verify(key, params).remaining_seconds == 0  # still valid, not cacheable any more
    clock.now += 0.5
    with pytest.raises(SignatureExpired) as caught:
        signer.verify(key, params)
    assert caught.value.code is MediaErrorCode.SIGNATURE_EXPIRED


def tampered(params: dict[str, str], **changes: str) -> dict[str, str]:
    return {**params, **changes}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: tampered(p, exp=str(int(p["exp"]) + 3600)),  # extending an (expired) URL
        lambda p: tampered(p, disp="inline"),
        lambda p: tampered(p, fn="evil.html"),
        lambda p: {k: v for k, v in p.items() if k != "fn"},
        lambda p: tampered(p, kid="k2"),
        lambda p: tampered(p, sig=p["sig"][:-1] + ("A" if p["sig"][-1] != "A" else "B")),
        lambda p: tampered(p, sig=p["sig"] + "A"),
        lambda p: tampered(p, sig="é" * 43),  # non-ASCII must not crash compare_digest
        lambda p: tampered(p, exp="\u0661" * 10),  # Arabic-Indic digits that int() would accept
        lambda p: tampered(p, exp=" " + p["exp"]),
        lambda p: tampered(p, disp="INLINE"),
        lambda p: {k: v for k, v in p.items() if k != "sig"},
        lambda p: {},
    ],
)
def test_tampered_urls_are_invalid(signer: UrlSigner, tamper: object) -> None:
    key, params = split(signer.sign(KEY, 300, filename="report.pdf"))
    with pytest.raises(SignatureInvalid) as caught:
        signer.verify(key, tamper(params))  # type: ignore[operator]
    assert caught.value.code is MediaErrorCode.SIGNATURE_INVALID


def test_a_signature_is_bound_to_its_key(signer: UrlSigner) -> None:
    _, params = split(signer.sign(KEY, 300))
    with pytest.raises(SignatureInvalid):
        signer.verify("t1/ffffffffffffffffffffffffffffffff", params)
    with pytest.raises(SignatureInvalid):
        signer.verify("t2/0123456789abcdef0123456789abcdef", params)


def test_a_tampered_expired_url_is_invalid_not_expired(signer: UrlSigner, clock: Clock) -> None:
    key, params = split(signer.sign(KEY, 60))
    clock.now += 120
    with pytest.raises(SignatureInvalid):
        signer.verify(key, tampered(params, disp="inline"))


def test_another_secret_does_not_verify(signer: UrlSigner, clock: Clock) -> None:
    stranger = UrlSigner({"k1": OTHER_SECRET}, "k1", clock=clock)
    with pytest.raises(SignatureInvalid):
        stranger.verify(*split(signer.sign(KEY, 300)))


def test_key_rotation(signer: UrlSigner, clock: Clock) -> None:
    # Given a URL signed before rotation, and a signer that now signs with k2 but still holds k1
    old_url = signer.sign(KEY, 300)
    rotated = UrlSigner({"k2": OTHER_SECRET, "k1": SECRET}, "k2", clock=clock)
    new_url = rotated.sign(KEY, 300)

    assert rotated.verify(*split(old_url)).key == KEY
    assert split(new_url)[1]["kid"] == "k2" and rotated.verify(*split(new_url)).key == KEY
    # once k1 is retired, its URLs stop working; the old signer never knew k2
    retired = UrlSigner({"k2": OTHER_SECRET}, "k2", clock=clock)
    with pytest.raises(SignatureInvalid):
        retired.verify(*split(old_url))
    with pytest.raises(SignatureInvalid):
        signer.verify(*split(new_url))


def test_from_spec(clock: Clock) -> None:
    first, second = generate_secret(), generate_secret()
    signer = UrlSigner.from_spec(f"new:{first}, old:{second}", clock=clock)
    old = UrlSigner({"old": base64.urlsafe_b64decode(second + "=")}, "old", clock=clock)

    assert split(signer.sign(KEY, 60))[1]["kid"] == "new"
    assert signer.verify(*split(old.sign(KEY, 60))).key == KEY


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "k1",
        f"k1:{base64.urlsafe_b64encode(b'short').decode()}",
        "k1:!!!",
        "bad id:" + "A" * 43,
        f"k1:{'A' * 43},k1:{'B' * 43}",
    ],
)
def test_bad_key_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        UrlSigner.from_spec(spec)


def test_current_kid_must_be_held() -> None:
    with pytest.raises(ValueError):
        UrlSigner({"k1": SECRET}, "k2")


def test_sign_refuses_bad_arguments(signer: UrlSigner) -> None:
    with pytest.raises(InvalidKey):
        signer.sign("t1/../etc/passwd", 60)
    for ttl in (0, -5, timedelta(hours=25)):
        with pytest.raises(ValueError):
            signer.sign(KEY, ttl)
    with pytest.raises(ValueError):
        signer.sign(KEY, 60, "download")  # type: ignore[arg-type]


def test_file_names_are_made_harmless() -> None:
    assert safe_filename('../../evil\r\n"x".html') == "_.._evil___x_.html"
    assert safe_filename("..hidden. ") == "hidden"
    assert safe_filename("e\u0301te\u0301.png") == "\u00e9t\u00e9.png"  # NFC
    assert len(safe_filename("a" * 1000)) == 255


def test_a_signed_file_name_is_sanitised(signer: UrlSigner) -> None:
    _, params = split(signer.sign(KEY, 60, filename="a/b\x00.txt"))
    assert params["fn"] == "a_b_.txt"


# --- the download app ------------------------------------------------------------------------------


@pytest.fixture
def storage(tmp_path: Path) -> LocalDiskStorage:
    return LocalDiskStorage(tmp_path / "media", chunk_size=1024)


@pytest.fixture
async def client(storage: LocalDiskStorage, signer: UrlSigner) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_media_app(storage, signer))
    async with httpx.AsyncClient(transport=transport, base_url="http://media.test") as client:
        yield client


PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(5000)


async def stored(storage: LocalDiskStorage, content_type: str, data: bytes = PNG) -> StoredObject:
    return await storage.put("t1", data, content_type=content_type)


def assert_locked_down(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"


async def test_get_streams_the_file_inline_when_it_is_an_image(
    client: httpx.AsyncClient, storage: LocalDiskStorage, signer: UrlSigner
) -> None:
    info = await stored(storage, "image/png")

    response = await client.get(signer.sign(info.key, 300, "inline"))

    assert response.status_code == 200
    assert response.content == PNG
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == str(len(PNG))
    assert response.headers["content-disposition"] == "inline"
    assert response.headers["cache-control"] == "private, max-age=300"
    assert response.headers["etag"] == f'"{info.sha256}"'
    assert_locked_down(response)


@pytest.mark.parametrize(
    "content_type", ["text/html", "image/svg+xml", "application/xhtml+xml", "text/plain", "application/pdf"]
)
async def test_anything_but_a_raster_image_is_an_attachment_even_when_inline_was_signed(
    client: httpx.AsyncClient, storage: LocalDiskStorage, signer: UrlSigner, content_type: str
) -> None:
    body = b"<svg onload=alert(1)><script>alert(document.domain)</script></svg>"
    info = await stored(storage, content_type, body)

    response = await client.get(signer.sign(info.key, 300, "inline"))

    assert response.status_code == 200 and response.content == body
    assert response.headers["content-type"] == content_type  # as stored, no charset added
    assert response.headers["content-disposition"] == "attachment"
    assert_locked_down(response)


async def test_an_image_signed_as_attachment_stays_an_attachment_with_its_name(
    client: httpx.AsyncClient, storage: LocalDiskStorage, signer: UrlSigner
) -> None:
    info = await stored(storage, "image/png")

    response = await client.get(signer.sign(info.key, 300, filename="Photo d'été 100%.png"))

    assert response.headers["content-disposition"] == (
        'attachment; filename="Photo d\'_t_ 100_.png"; '
        "filename*=UTF-8''Photo%20d%27%C3%A9t%C3%A9%20100%25.png"
    )


async def test_head_sends_the_headers_without_the_body(
    client: httpx.AsyncClient, storage: LocalDiskStorage, signer: UrlSigner
) -> None:
    info = await stored(storage, "image/webp")
    url = signer.sign(info.key, 120, "inline")

    head = await client.head(url)
    get = await client.get(url)

    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(info.size)
    assert head.headers["content-type"] == "image/webp"
    assert head.headers["content-disposition"] == "inline"
    assert head.headers["cache-control"] == "private, max-age=120"
    assert_locked_down(head)
    assert {k: v for k, v in head.headers.items()} == {k: v for k, v in get.headers.items()}


async def test_cache_lifetime_follows_the_remaining_validity(
    client: httpx.AsyncClient, storage: LocalDiskStorage, signer: UrlSigner, clock: Clock
) -> None:
    info = await stored(storage, "image/png")
    url = signer.sign(info.key, 300, "inline")
    clock.now += 100.25

    response = await client.get(url)

    assert response.headers["cache-control"] == "private, max-age=199"


async def test_expired_url_is_forbidden(
    client: httpx.AsyncClient, storage: LocalDiskStorage, signer: UrlSigner, clock: Clock
) -> None:
    info = await stored(storage, "image/png")
    url = signer.sign(info.key, 60)
    clock.now += 61

    for response in (await client.get(url), await client.head(url)):
        assert response.status_code == 403
        assert PNG not in response.content
        assert response.headers["cache-control"] == "no-store"
        assert_locked_down(response)
    assert (await client.get(url)).json() == {"code": "SIGNATURE_EXPIRED"}


async def test_tampered_or_foreign_urls_are_forbidden(
    client: httpx.AsyncClient, storage: LocalDiskStorage, signer: UrlSigner, clock: Clock
) -> None:
    info = await stored(storage, "text/html", b"<script>secret</script>")
    other = await stored(storage, "text/html", b"<script>other</script>")
    url = signer.sign(info.key, 300)
    path, params = split(url)
    foreign = UrlSigner({"k1": OTHER_SECRET}, "k1", clock=clock).sign(info.key, 300)

    attempts = [
        f"/files/{path}",  # no signature
        f"/files/{path}?{urlencode(tampered(params, exp=str(int(params['exp']) + 10)))}",
        f"/files/{path}?{urlencode(tampered(params, disp='inline'))}",
        f"/files/{other.key}?{urlencode(params)}",  # a signature for another file
        f"{url}&sig={params['sig']}",  # repeated parameter
        foreign,
    ]
    for attempt in attempts:
        response = await client.get(attempt)
        assert response.status_code == 403, attempt
        assert response.json() == {"code": "SIGNATURE_INVALID"}
        assert b"secret" not in response.content and b"other" not in response.content


async def test_unknown_query_parameters_do_not_matter(
    client: httpx.AsyncClient, storage: LocalDiskStorage, signer: UrlSigner
) -> None:
    info = await stored(storage, "image/png")
    response = await client.get(signer.sign(info.key, 300) + "&v=2")
    assert response.status_code == 200


async def test_traversal_through_the_url_is_never_served(
    client: httpx.AsyncClient, storage: LocalDiskStorage, signer: UrlSigner, tmp_path: Path
) -> None:
    (tmp_path / "secret.txt").write_bytes(b"TOP SECRET")
    _, params = split(signer.sign(KEY, 300))
    query = urlencode(params)
    for path in [
        "../secret.txt",
        "..%2Fsecret.txt",
        "t1/..%2F..%2Fsecret.txt",
        "%2e%2e/secret.txt",
        "t1%5C..%5Csecret.txt",
        "t1/%00",
        "%EF%BC%8E%EF%BC%8E/secret.txt",
    ]:
        response = await client.get(f"/files/{path}?{query}")
        assert response.status_code in (403, 404), path
        assert b"TOP SECRET" not in response.content


async def test_a_valid_url_to_a_missing_file_is_not_found(
    client: httpx.AsyncClient, storage: LocalDiskStorage, signer: UrlSigner
) -> None:
    info = await stored(storage, "image/png")
    url = signer.sign(info.key, 300)
    await storage.delete(info.key)

    for response in (await client.get(url), await client.head(url)):
        assert response.status_code == 404
        assert_locked_down(response)
    assert (await client.get(url)).json() == {"code": "NOT_FOUND"}


async def test_large_files_stream_intact(
    client: httpx.AsyncClient, storage: LocalDiskStorage, signer: UrlSigner
) -> None:
    data = os.urandom(300_000)
    info = await stored(storage, "application/octet-stream", data)

    async with client.stream("GET", signer.sign(info.key, 300)) as response:
        chunks = [chunk async for chunk in response.aiter_raw()]

    assert b"".join(chunks) == data
    assert response.headers["content-disposition"] == "attachment"


async def test_only_get_and_head(
    client: httpx.AsyncClient, storage: LocalDiskStorage, signer: UrlSigner
) -> None:
    info = await stored(storage, "image/png")
    url = signer.sign(info.key, 300)
    assert (await client.post(url)).status_code == 405
    assert (await client.delete(url)).status_code == 405
    assert await storage.exists(info.key)


async def test_even_a_correctly_signed_traversal_key_is_refused_by_the_storage(
    client: httpx.AsyncClient, signer: UrlSigner, clock: Clock, tmp_path: Path
) -> None:
    # sign() refuses such keys; forge the MAC directly to prove the storage layer holds on its own
    (tmp_path / "secret.txt").write_bytes(b"TOP SECRET")
    exp = str(int(clock.now) + 300)
    params = {"exp": exp, "disp": "attachment", "kid": "k1"}
    params["sig"] = signer._mac("k1", "../secret.txt", exp, "attachment", "")
    assert signer.verify("../secret.txt", params).key == "../secret.txt"

    response = await client.get(f"/files/..%2Fsecret.txt?{urlencode(params)}")

    assert response.status_code == 404
    assert b"TOP SECRET" not in response.content
