"""oEmbed providers Beep asks directly (their pages need scripts to show anything useful), and finding
the links of a message that deserve a preview."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

MAX_LINKS = 5  # previews per message (Discord shows up to 5 embeds from links... and so do we)


@dataclass(frozen=True)
class Provider:
    name: str
    hosts: frozenset[str]
    path: re.Pattern[str]
    endpoint: str  # oEmbed endpoint; `?url=...&format=json` is appended

    def matches(self, url: str) -> bool:
        parts = urlsplit(url)
        return (parts.hostname or "").lower() in self.hosts and bool(self.path.match(parts.path or "/"))

    def oembed_url(self, url: str, endpoint: str | None = None) -> str:
        return f"{endpoint or self.endpoint}?{urlencode({'url': url, 'format': 'json'})}"


PROVIDERS = (
    Provider(
        "YouTube",
        frozenset({"youtube.com", "www.youtube.com", "m.youtube.com", "youtu.be", "music.youtube.com"}),
        re.compile(r"^/(watch|shorts/|embed/|live/|[A-Za-z0-9_-]{6,}$)"),
        "https://www.youtube.com/oembed",
    ),
    Provider(
        "Spotify",
        frozenset({"open.spotify.com"}),
        re.compile(r"^/(intl-[a-z]+/)?(track|album|playlist|artist|episode|show)/"),
        "https://open.spotify.com/oembed",
    ),
    Provider(
        "Twitter",
        frozenset({"twitter.com", "www.twitter.com", "mobile.twitter.com", "x.com", "www.x.com"}),
        re.compile(r"^/[A-Za-z0-9_]{1,15}/status/\d+"),
        "https://publish.twitter.com/oembed",
    ),
)


def provider_for(url: str) -> Provider | None:
    return next((p for p in PROVIDERS if p.matches(url)), None)


def oembed_endpoint(provider: Provider, overrides: Mapping[str, str]) -> str:
    """The provider's endpoint, or the operator's (tests point them at a local fixture server)."""
    return overrides.get(provider.name, provider.endpoint)


# Links as Discord finds them: http(s) up to whitespace; <url> suppresses the preview of that link;
# trailing punctuation is not part of the link.
_LINK = re.compile(r"(<)?(https?://[^\s<>]+)(>)?", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""


def links_to_preview(content: str) -> list[str]:
    found: list[str] = []
    in_code = False
    for fragment in re.split(r"(`+)", content):
        if fragment.startswith("`"):
            in_code = not in_code
            continue
        if in_code:
            continue
        for match in _LINK.finditer(fragment):
            if match.group(1) and match.group(3):
                continue  # <https://...>: the author suppressed this one
            url = match.group(2).rstrip(_TRAILING)
            if url not in found:
                found.append(url)
            if len(found) == MAX_LINKS:
                return found
    return found
