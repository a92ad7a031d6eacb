"""The download endpoint: `GET|HEAD /files/{key}?<signed query>` streams a stored object.

The signature is checked before the storage is touched (403), so nobody learns which keys exist without a
valid URL; a valid URL to a deleted object is a 404. Every response is locked down: the stored content
type with `nosniff`, a sandboxing CSP, and `attachment` unless the URL asked for `inline` and the type is
a raster image (media/mime.py) — an uploaded HTML or SVG file can never run in the app's origin.

Mount it where the signer's `base_url` points: `Mount("/media", create_media_app(...))` pairs with
`UrlSigner(..., base_url="/media/files")`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from media.errors import InvalidKey, MediaError, MediaErrorCode, ObjectNotFound, SignatureInvalid
from media.mime import may_be_inline
from media.signing import Grant, UrlSigner, safe_filename
from media.storage import FileStorage, StoredFile, StoredObject

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def create_media_app(
    storage: FileStorage, signer: UrlSigner, is_live: Callable[[str], Awaitable[bool]] | None = None
) -> Starlette:
    """`is_live(key)`: asked after the signature, before storage; False answers 404 (the object's row is
    gone, even if its bytes are not yet)."""

    async def download(request: Request) -> Response:
        key: str = request.path_params["key"]
        try:
            grant = signer.verify(key, _single_valued(request))
        except MediaError as error:
            return _error(403, error.code)
        if is_live is not None and not await is_live(key):
            return _error(404, MediaErrorCode.NOT_FOUND)
        try:
            if request.method == "HEAD":
                return Response(headers=_headers(await storage.stat(key), grant))
            stack = AsyncExitStack()
            file = await stack.enter_async_context(storage.open(key))
        except (ObjectNotFound, InvalidKey):
            return _error(404, MediaErrorCode.NOT_FOUND)
        # The body owns the open file from here and closes it when streaming ends or is abandoned.
        return StreamingResponse(_stream(stack, file), headers=_headers(file.info, grant))

    return Starlette(routes=[Route("/files/{key:path}", download, methods=["GET", "HEAD"])])


async def _stream(stack: AsyncExitStack, file: StoredFile) -> AsyncIterator[bytes]:
    async with stack:
        async for chunk in file:
            yield chunk


def _single_valued(request: Request) -> dict[str, str]:
    """The query as a dict; a repeated parameter is an attempt to confuse, not a URL we issued."""
    params: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in params:
            raise SignatureInvalid("repeated query parameter")
        params[name] = value
    return params


def _headers(info: StoredObject, grant: Grant) -> dict[str, str]:
    return {
        "Content-Type": info.content_type,
        "Content-Length": str(info.size),
        "Content-Disposition": content_disposition(grant, info.content_type),
        "Cache-Control": f"private, max-age={grant.remaining_seconds}",
        "ETag": f'"{info.sha256}"',
        **SECURITY_HEADERS,
    }


def content_disposition(grant: Grant, content_type: str) -> str:
    kind = "inline" if grant.disposition == "inline" and may_be_inline(content_type) else "attachment"
    name = safe_filename(grant.filename) if grant.filename else ""
    if not name:
        return kind
    # RFC 6266: an ASCII fallback for old clients, the exact name in filename* (RFC 8187).
    fallback = "".join(ch if " " <= ch <= "~" and ch != "%" else "_" for ch in name)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _error(status: int, code: MediaErrorCode) -> Response:
    return Response(
        json.dumps({"code": code.value}),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", **SECURITY_HEADERS},
    )
