"""Link previews: oEmbed for the known providers, OpenGraph/Twitter cards for other pages, cached.

A failed or refused fetch is cached too (shorter), so a message full of one hostile link costs one
attempt, not one per message.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping

from media.previews.fetcher import FetchRefused, SafeFetcher
from media.previews.metadata import Preview, from_html, from_oembed
from media.previews.providers import oembed_endpoint, provider_for

log = logging.getLogger("beep.previews")


class PreviewCache:
    """A bounded LRU with expiry, per process (a shared cache is a later step for many workers)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[float, Preview | None]] = OrderedDict()

    def get(self, url: str) -> tuple[bool, Preview | None]:
        entry = self._entries.get(url)
        if entry is None or entry[0] < time.monotonic():
            self._entries.pop(url, None)
            return False, None
        self._entries.move_to_end(url)
        return True, entry[1]

    def put(self, url: str, preview: Preview | None, ttl_seconds: float) -> None:
        self._entries[url] = (time.monotonic() + ttl_seconds, preview)
        self._entries.move_to_end(url)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)


class PreviewService:
    def __init__(
        self,
        fetcher: SafeFetcher,
        *,
        cache: PreviewCache | None = None,
        oembed_overrides: Mapping[str, str] | None = None,
        ttl_seconds: float = 3600.0,
        failure_ttl_seconds: float = 300.0,
    ) -> None:
        self.fetcher = fetcher
        self.cache = cache or PreviewCache()
        self.oembed_overrides = dict(oembed_overrides or {})
        self.ttl_seconds = ttl_seconds
        self.failure_ttl_seconds = failure_ttl_seconds

    async def preview(self, url: str) -> Preview | None:
        hit, cached = self.cache.get(url)
        if hit:
            return cached
        try:
            found = await self._fetch(url)
        except FetchRefused as refused:
            log.info("no preview", extra={"reason": refused.reason})
            found = None
        if found is not None and found.is_empty():
            found = None
        self.cache.put(url, found, self.ttl_seconds if found else self.failure_ttl_seconds)
        return found

    async def _fetch(self, url: str) -> Preview:
        provider = provider_for(url)
        if provider is not None:
            endpoint = oembed_endpoint(provider, self.oembed_overrides)
            answer = await self.fetcher.fetch(provider.oembed_url(url, endpoint))
            return from_oembed(url, answer.text(), provider.name)
        page = await self.fetcher.fetch(url)
        if page.content_type == "application/json":
            raise FetchRefused("not a page")
        return from_html(page.url, page.text())
