"""Link previews against a local HTTP server that plays YouTube, Spotify and Twitter oEmbed and
OpenGraph pages, plus hostile ones: redirects to other loopback addresses, huge and slow bodies,
redirect loops, binary content, malformed HTML. Only 127.0.0.1 is allow-listed, as test configuration."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Iterator

import pytest

from media.previews.fetcher import FetchPolicy, FetchRefused, SafeFetcher, is_public
from media.previews.metadata import from_html
from media.previews.providers import links_to_preview, provider_for
from media.previews.service import PreviewService
from tests.harness.preview_site import serve_preview_site


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    with serve_preview_site() as url:
        yield url


def policy_for_tests(max_bytes: int = 64 * 1024) -> FetchPolicy:
    return FetchPolicy(
        allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),), timeout_seconds=3.0, max_bytes=max_bytes
    )


@pytest.fixture
async def service(origin: str) -> AsyncIterator[PreviewService]:
    fetcher = SafeFetcher(policy_for_tests())
    overrides = {name: f"{origin}/oembed/{name.lower()}" for name in ("YouTube", "Spotify", "Twitter")}
    yield PreviewService(fetcher, oembed_overrides=overrides)
    await fetcher.close()


async def test_an_opengraph_page_gives_title_description_site_and_absolute_image(
    service: PreviewService, origin: str
) -> None:
    preview = await service.preview(f"{origin}/page")
    assert preview is not None
    assert (preview.title, preview.description, preview.site_name) == (
        "A page & its title",
        "What it is about.",
        "Example",
    )
    assert preview.image_url == f"{origin}/cover.png"


@pytest.mark.parametrize(
    ("url", "provider", "kind"),
    [
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "YouTube", "video"),
        ("https://youtu.be/dQw4w9WgXcQ", "YouTube", "video"),
        ("https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC", "Spotify", "rich"),
        ("https://x.com/jack/status/20", "Twitter", "rich"),
        ("https://twitter.com/jack/status/20", "Twitter", "rich"),
    ],
)
async def test_known_providers_answer_through_oembed(
    service: PreviewService, url: str, provider: str, kind: str
) -> None:
    preview = await service.preview(url)
    assert preview is not None
    assert (preview.provider, preview.kind, preview.title) == (provider, kind, f"{provider} title")
    assert preview.author_name == f"{provider} author"
    assert preview.image_url == f"https://img.example/{provider}.jpg"  # the provider's html is never kept


async def test_a_redirect_within_the_allowed_host_is_followed(service: PreviewService, origin: str) -> None:
    preview = await service.preview(f"{origin}/hop")
    assert preview is not None and preview.title == "A page & its title"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/to-other-loopback", "address not allowed"),
        ("/to-metadata", "address not allowed"),
        ("/loop", "too many redirects"),
        ("/declared-huge", "body too large"),
        ("/slow", "timed out"),
        ("/png", "content type image/png"),
    ],
)
async def test_hostile_answers_are_refused(origin: str, path: str, reason: str) -> None:
    fetcher = SafeFetcher(policy_for_tests())
    try:
        with pytest.raises(FetchRefused) as refused:
            await fetcher.fetch(f"{origin}{path}")
    finally:
        await fetcher.close()
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8080/",
        "http://10.1.2.3/",
        "http://192.168.0.1/admin",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "ftp://example.com/file",
        "http://user:pass@example.com/",
        "file:///etc/passwd",
    ],
)
async def test_private_addresses_and_other_schemes_are_refused_by_default(url: str) -> None:
    fetcher = SafeFetcher()  # production policy: nothing allow-listed
    try:
        with pytest.raises(FetchRefused):
            await fetcher.fetch(url)
    finally:
        await fetcher.close()


async def test_a_huge_body_is_cut_at_the_cap_and_its_head_still_read(origin: str) -> None:
    fetcher = SafeFetcher(policy_for_tests(max_bytes=16 * 1024))
    try:
        page = await fetcher.fetch(f"{origin}/huge")
    finally:
        await fetcher.close()
    assert page.truncated and len(page.body) == 16 * 1024
    assert from_html(page.url, page.text()).title == "Big"


async def test_malformed_html_gives_what_can_be_read(service: PreviewService, origin: str) -> None:
    preview = await service.preview(f"{origin}/malformed")
    assert preview is not None and preview.title == "Still readable"


async def test_failures_are_cached_so_a_hostile_link_costs_one_attempt(
    service: PreviewService, origin: str
) -> None:
    url = f"{origin}/slow"
    assert await service.preview(url) is None
    started = asyncio.get_running_loop().time()
    assert await service.preview(url) is None
    assert asyncio.get_running_loop().time() - started < 0.5


def test_links_are_found_outside_code_and_suppressed_in_angle_brackets() -> None:
    content = (
        "see https://a.example/x, and <https://b.example/quiet> or `https://c.example/code` "
        "```\nhttps://d.example/block\n``` then (https://e.example/paren) https://a.example/x"
    )
    assert links_to_preview(content) == ["https://a.example/x", "https://e.example/paren"]
    many = " ".join(f"https://s{i}.example/" for i in range(9))
    assert len(links_to_preview(many)) == 5


def test_only_provider_urls_go_to_oembed() -> None:
    assert provider_for("https://www.youtube.com/watch?v=x") is not None
    assert provider_for("https://www.youtube.com/about") is None
    assert provider_for("https://x.com/jack") is None
    assert provider_for("https://evil.example/youtube.com/watch") is None


def test_address_classes() -> None:
    public = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]
    private = [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.1.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "224.0.0.1",
        "100.64.0.1",
        "::ffff:10.0.0.1",
        "0.0.0.0",
    ]
    assert all(is_public(ipaddress.ip_address(a)) for a in public)
    assert not any(is_public(ipaddress.ip_address(a)) for a in private)
