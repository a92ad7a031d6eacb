"""Content types: what may be stored, and the few that may ever be shown inline."""

from __future__ import annotations

import re

from media.errors import InvalidContentType

# RFC 6838 restricted names; parameters are dropped (files are served as attachments unless an image).
_TOKEN = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
_CONTENT_TYPE_RE = re.compile(rf"{_TOKEN}/{_TOKEN}")

# Raster images browsers render without running anything. Never SVG (scripts) or HTML.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

DEFAULT_CONTENT_TYPE = "application/octet-stream"


def normalize_content_type(value: str) -> str:
    """`Text/HTML; charset=utf-8` → `text/html`; anything that is not a plain type/subtype is refused."""
    if not isinstance(value, str) or not value.isascii():  # "\u212a".lower() would be an ASCII "k"
        raise InvalidContentType("invalid content type")
    essence = value.split(";", 1)[0].strip().lower()
    if _CONTENT_TYPE_RE.fullmatch(essence) is None:
        raise InvalidContentType("invalid content type")
    return essence


def may_be_inline(content_type: str) -> bool:
    return content_type in INLINE_TYPES
