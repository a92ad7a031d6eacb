"""What a preview shows, read from a page's OpenGraph / Twitter-card meta tags or an oEmbed answer.

Parsing uses the standard library's tolerant HTML tokenizer (malformed pages parse as far as they make
sense) and stops at `</head>` or the body: the rest of the page is never looked at. Every field is
bounded and must be plain text; image URLs must be http(s).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

MAX_TITLE = 256
MAX_DESCRIPTION = 1024
MAX_NAME = 128
MAX_URL = 2048


@dataclass(frozen=True)
class Preview:
    url: str
    kind: str  # "link" | "video" | "rich" | "photo"
    title: str | None = None
    description: str | None = None
    site_name: str | None = None
    image_url: str | None = None
    provider: str | None = None  # oEmbed provider name, when it came from one
    author_name: str | None = None

    def is_empty(self) -> bool:
        return not (self.title or self.description or self.image_url)


class _HeadParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title: str | None = None
        self._in_title = False
        self._title_parts: list[str] = []
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.done:
            return
        if tag == "body":
            self.done = True
        elif tag == "title":
            self._in_title = True
        elif tag == "meta":
            values = {k.lower(): v for k, v in attrs if v is not None}
            key = (values.get("property") or values.get("name") or "").strip().lower()
            content = values.get("content")
            if key and content is not None and key not in self.meta and len(self.meta) < 200:
                self.meta[key] = content

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self.title = "".join(self._title_parts)
        elif tag == "head":
            self.done = True

    def handle_data(self, data: str) -> None:
        if self._in_title and not self.done and sum(map(len, self._title_parts)) < MAX_TITLE * 4:
            self._title_parts.append(data)


def _text(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    cleaned = " ".join(value.split())
    cleaned = "".join(ch for ch in cleaned if ch.isprintable())
    if not cleaned:
        return None
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _http_url(value: str | None, base: str) -> str | None:
    if not value:
        return None
    absolute = urljoin(base, value.strip())
    parts = urlsplit(absolute)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(absolute) > MAX_URL:
        return None
    return absolute


def from_html(url: str, html: str) -> Preview:
    parser = _HeadParser()
    with contextlib.suppress(Exception):  # a hostile page may trip the tokenizer: keep what was read
        parser.feed(html)
        parser.close()
    meta = parser.meta

    def first(*keys: str) -> str | None:
        return next((meta[k] for k in keys if meta.get(k)), None)

    kind = "video" if (first("og:type") or "").startswith("video") else "link"
    return Preview(
        url=url,
        kind=kind,
        title=_text(first("og:title", "twitter:title") or parser.title, MAX_TITLE),
        description=_text(first("og:description", "twitter:description", "description"), MAX_DESCRIPTION),
        site_name=_text(first("og:site_name", "application-name"), MAX_NAME),
        image_url=_http_url(
            first("og:image:secure_url", "og:image", "twitter:image", "twitter:image:src"), url
        ),
    )


def from_oembed(url: str, body: str, provider: str) -> Preview:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return Preview(url=url, kind="link", provider=provider)
    kind = data.get("type") if data.get("type") in ("video", "rich", "photo", "link") else "link"

    def field(name: str, limit: int) -> str | None:
        value = data.get(name)
        return _text(value, limit) if isinstance(value, str) else None

    thumbnail = data.get("thumbnail_url") if isinstance(data.get("thumbnail_url"), str) else None
    return Preview(
        url=url,
        kind=str(kind),
        title=field("title", MAX_TITLE),
        description=field("description", MAX_DESCRIPTION),
        site_name=field("provider_name", MAX_NAME) or provider,
        image_url=_http_url(thumbnail, url),
        provider=provider,
        author_name=field("author_name", MAX_NAME),
    )
