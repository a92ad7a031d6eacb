"""A fetcher for link previews that a hostile URL cannot turn against us.

- Only http(s), on ports 80/443 unless the operator allows more.
- Every hop's host is resolved here and refused when any address is private, loopback, link-local,
  multicast, reserved or otherwise not globally routable (SSRF); the request then goes to the address
  that was checked (the Host header and TLS SNI keep the name), so a DNS answer cannot change between
  check and use.
- At most `max_redirects` redirects, each checked like the first URL.
- The body is read up to `max_bytes` (the rest is never downloaded), within `timeout_seconds` overall.
- Only the content types a preview needs (HTML, JSON for oEmbed).

Tests allow-list loopback explicitly (`allowed_networks`); production leaves it empty.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class FetchRefused(Exception):
    """The URL is not fetched, or its answer not used; `reason` says why (logged, never shown raw)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FetchPolicy:
    max_redirects: int = 3
    max_bytes: int = 512 * 1024
    timeout_seconds: float = 5.0
    allowed_ports: frozenset[int] = frozenset({80, 443})
    content_types: tuple[str, ...] = ("text/html", "application/xhtml+xml", "application/json")
    allowed_networks: tuple[Network, ...] = ()  # tests only: e.g. 127.0.0.0/8 for the fixture server
    user_agent: str = "Mozilla/5.0 (compatible; BeepLinkPreview/1.0; +https://github.com/beep)"


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    content_type: str
    body: bytes
    truncated: bool = field(default=False)

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def is_public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public(address.ipv4_mapped)
    return address.is_global and not address.is_multicast


class SafeFetcher:
    def __init__(
        self, policy: FetchPolicy | None = None, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.policy = policy or FetchPolicy()
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            timeout=httpx.Timeout(self.policy.timeout_seconds, connect=min(2.0, self.policy.timeout_seconds)),
            headers={"user-agent": self.policy.user_agent, "accept": "text/html,application/json;q=0.9"},
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str) -> Fetched:
        try:
            async with asyncio.timeout(self.policy.timeout_seconds):
                return await self._follow(url)
        except TimeoutError:
            raise FetchRefused("timed out") from None
        except httpx.HTTPError as error:
            raise FetchRefused(f"transport error: {type(error).__name__}") from None

    async def _follow(self, url: str) -> Fetched:
        for _hop in range(self.policy.max_redirects + 1):
            response_url, response = await self._request(url)
            try:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchRefused("redirect without a location")
                    url = urljoin(response_url, location)
                    continue
                if response.status_code != 200:
                    raise FetchRefused(f"status {response.status_code}")
                content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if content_type not in self.policy.content_types:
                    raise FetchRefused(f"content type {content_type or 'missing'}")
                body, truncated = await self._read_capped(response)
                return Fetched(response_url, content_type, body, truncated)
            finally:
                await response.aclose()
        raise FetchRefused("too many redirects")

    async def _request(self, url: str) -> tuple[str, httpx.Response]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchRefused("not an http(s) URL")
        if parts.username or parts.password:
            raise FetchRefused("credentials in the URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = await self._checked_address(parts.hostname, port)
        host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        target = urlunsplit((parts.scheme, _netloc(address, port), parts.path or "/", parts.query, ""))
        request = self._client.build_request(
            "GET", target, headers={"host": host_header}, extensions={"sni_hostname": parts.hostname}
        )
        response = await self._client.send(request, stream=True)
        return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, "")), response

    async def _checked_address(self, host: str, port: int) -> Address:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror:
            raise FetchRefused("unknown host") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if not addresses:
            raise FetchRefused("unknown host")
        for address in addresses:  # every answer must be acceptable, or a rebinding pick could slip by
            if not is_public(address) and not _in(address, self.policy.allowed_networks):
                raise FetchRefused("address not allowed")
        if port not in self.policy.allowed_ports and not all(
            _in(a, self.policy.allowed_networks) for a in addresses
        ):
            raise FetchRefused(f"port {port} not allowed")
        return addresses[0]

    async def _read_capped(self, response: httpx.Response) -> tuple[bytes, bool]:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.policy.max_bytes * 8:
            raise FetchRefused("body too large")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():  # decoded: a gzip bomb stops at the cap
            chunks.append(chunk)
            size += len(chunk)
            if size >= self.policy.max_bytes:
                return b"".join(chunks)[: self.policy.max_bytes], True
        return b"".join(chunks), False


def _netloc(address: Address, port: int) -> str:
    host = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    return f"{host}:{port}"


def _in(address: Address, networks: Sequence[Network]) -> bool:
    return any(address.version == n.version and address in n for n in networks)
