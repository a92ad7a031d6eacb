"""A local web site for link-preview tests: OpenGraph pages, oEmbed answers as YouTube, Spotify and
Twitter give them, and hostile pages (redirects to other loopback addresses and to cloud metadata,
loops, huge and slow bodies, binary content, malformed HTML). Served on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.harness.ports import free_port

OG_PAGE = """<!doctype html><html><head>
<title>Fallback title</title>
<meta property="og:title" content="A  page &amp; its   title">
<meta property="og:description" content="What it is about.">
<meta property="og:site_name" content="Example">
<meta property="og:image" content="/cover.png">
<meta name="twitter:title" content="Not this one">
</head><body><meta property="og:title" content="not from the body"></body></html>"""


def oembed(provider: str, kind: str) -> JSONResponse:
    return JSONResponse(
        {
            "type": kind,
            "title": f"{provider} title",
            "author_name": f"{provider} author",
            "provider_name": provider,
            "thumbnail_url": f"https://img.example/{provider}.jpg",
            "html": "<iframe src='https://evil.example'></iframe>",
        }
    )


async def huge(_request: Request) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield b"<html><head><title>Big</title></head><body>"
        for _ in range(5000):
            yield b"x" * 1024

    return StreamingResponse(body(), media_type="text/html")


async def slow(_request: Request) -> Response:
    await asyncio.sleep(8)
    return Response(OG_PAGE, media_type="text/html")


def preview_site(port: int) -> Starlette:
    me = f"http://127.0.0.1:{port}"
    return Starlette(
        routes=[
            Route("/page", lambda r: Response(OG_PAGE, media_type="text/html; charset=utf-8")),
            Route("/oembed/youtube", lambda r: oembed("YouTube", "video")),
            Route("/oembed/spotify", lambda r: oembed("Spotify", "rich")),
            Route("/oembed/twitter", lambda r: oembed("Twitter", "rich")),
            Route("/hop", lambda r: RedirectResponse(f"{me}/page", 302)),
            Route("/to-other-loopback", lambda r: RedirectResponse(f"http://127.0.0.2:{port}/page", 302)),
            Route(
                "/to-metadata", lambda r: RedirectResponse("http://169.254.169.254/latest/meta-data/", 302)
            ),
            Route("/loop", lambda r: RedirectResponse(f"{me}/loop", 302)),
            Route("/huge", huge),
            Route(
                "/declared-huge",
                lambda r: Response(
                    b"x", headers={"content-length": str(50 * 1024 * 1024)}, media_type="text/html"
                ),
            ),
            Route("/slow", slow),
            Route("/png", lambda r: Response(b"\x89PNG\r\n", media_type="image/png")),
            Route(
                "/malformed",
                lambda r: Response(
                    "<html><head><title>Still <b>readable</title><meta property=og:title content=",
                    media_type="text/html",
                ),
            ),
        ]
    )


@contextlib.contextmanager
def serve_preview_site() -> Iterator[str]:
    """Runs the site in a thread; yields its origin (http://127.0.0.1:PORT)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(preview_site(port), host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the preview site did not start")
        threading.Event().wait(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
