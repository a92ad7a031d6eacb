"""Slow or lying request bodies cannot hold the router's connections: a JSON body declared larger than a
GraphQL request can be is refused before it is read (413), and a body that stops arriving is cut with 408
(Node's request timeout, checked every 30 s by its HTTP server, so the cut lands within timeout + 30 s)."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

from tests.harness.stack import Stack


async def _exchange(url: str, head: bytes, body_part: bytes, wait: float) -> tuple[bytes, float]:
    """Send a request head and part of its body on a raw socket; what came back and when (EOF or timeout)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    started = time.monotonic()
    try:
        writer.write(head + body_part)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), wait)
        return answer, time.monotonic() - started
    finally:
        writer.close()


def _head(url: str, content_type: str, length: int, *extra: str) -> bytes:
    parts = urlsplit(url)
    lines = [
        f"POST {parts.path} HTTP/1.1",
        f"Host: {parts.hostname}:{parts.port}",
        f"Content-Type: {content_type}",
        f"Content-Length: {length}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_a_json_body_declared_too_large_is_refused_before_it_is_read(embedded_stack: Stack) -> None:
    url = embedded_stack.router_url
    answer, elapsed = await _exchange(url, _head(url, "application/json", 20_000_000), b'{"query":', 10)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"REQUEST_ENTITY_TOO_LARGE" in answer
    assert elapsed < 5


async def test_an_upload_that_stops_arriving_is_cut_with_408(embedded_stack: Stack) -> None:
    stack = embedded_stack
    router = stack.start_router_beside("router-short-timeout", {"BEEP_ROUTER_REQUEST_TIMEOUT_SECONDS": "2"})
    head = _head(router, "multipart/form-data; boundary=x", 20_000_000, "GraphQL-Require-Preflight: 1")
    answer, elapsed = await _exchange(router, head, b"--x\r\n" + b"a" * 1024, 45)
    # Refused as a timeout, not served nor left hanging until the client gives up.
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert 2 <= elapsed < 40, elapsed
