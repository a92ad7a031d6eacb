"""Discord-style embeds: validated with Discord's limits, stored as Discord-shaped JSON on the message.

Limits (Discord's, so existing webhook tooling never meets a surprise): at most 10 embeds; title 256,
description 4096, at most 25 fields, field name 256 and value 1024, footer text 2048, author name 256
characters; and at most 6000 characters over every title, description, field name and value, footer
text and author name of the message. URLs must be http(s) and at most 2048 characters; colour
0-16777215; timestamp ISO 8601. Unknown keys are ignored (Discord's `type`, `video`, `provider`...).

A problem raises `PayloadProblem`, a validation error whose `path` names the field (e.g.
`("embeds", 0, "fields", 3, "value")`): GraphQL answers it as a ValidationError with
`field: "embeds.0.fields.3.value"`, the HTTP endpoint as Discord's nested error JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from subgraphs.kernel.errors import ErrorCode, ValidationFailed

MAX_EMBEDS = 10
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELDS = 25
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FOOTER = 2048
MAX_AUTHOR = 256
MAX_TOTAL = 6000
MAX_URL = 2048
MAX_COLOR = 0xFFFFFF

Path = tuple[str | int, ...]


class PayloadProblem(ValidationFailed):
    """A field of a webhook payload breaks a rule. `kind` is Discord's error code string."""

    def __init__(self, path: Path, message: str, *, kind: str, code: ErrorCode = ErrorCode.INVALID_INPUT):
        super().__init__(message, code=code, field=".".join(str(p) for p in path))
        self.path = path
        self.kind = kind


def too_long(path: Path, limit: int) -> PayloadProblem:
    return PayloadProblem(
        path, f"Must be {limit} or fewer in length.", kind="BASE_TYPE_MAX_LENGTH", code=ErrorCode.TOO_LONG
    )


def wrong_type(path: Path, expected: str) -> PayloadProblem:
    return PayloadProblem(
        path, f"Must be {expected}.", kind="BASE_TYPE_BAD_TYPE", code=ErrorCode.INVALID_FORMAT
    )


def required(path: Path) -> PayloadProblem:
    return PayloadProblem(path, "This field is required.", kind="BASE_TYPE_REQUIRED", code=ErrorCode.REQUIRED)


def text(value: Any, path: Path, limit: int, *, needed: bool = False) -> str | None:
    """A string field: None when absent (or required), type and length checked."""
    if value is None:
        if needed:
            raise required(path)
        return None
    if not isinstance(value, str):
        raise wrong_type(path, "a string")
    if needed and not value.strip():
        raise required(path)
    if len(value) > limit:
        raise too_long(path, limit)
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
        raise PayloadProblem(path, "Contains control characters.", kind="BASE_TYPE_BAD_TYPE")
    return value


def url(value: Any, path: Path) -> str | None:
    found = text(value, path, MAX_URL)
    if found is None:
        return None
    if not (found.startswith("https://") or found.startswith("http://")) or any(c.isspace() for c in found):
        raise PayloadProblem(path, "Scheme must be http or https.", kind="URL_TYPE_INVALID_URL")
    return found


def _object(value: Any, path: Path) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise wrong_type(path, "an object")
    return value


def _embed(raw: Any, path: Path) -> tuple[dict[str, Any], int]:
    """One embed, normalised, and the characters it counts towards the 6000."""
    embed = _object(raw, path)
    assert embed is not None
    out: dict[str, Any] = {"type": "rich"}
    counted = 0
    for key, limit in (("title", MAX_TITLE), ("description", MAX_DESCRIPTION)):
        value = text(embed.get(key), (*path, key), limit)
        if value is not None:
            out[key] = value
            counted += len(value)
    if (link := url(embed.get("url"), (*path, "url"))) is not None:
        out["url"] = link
    timestamp = embed.get("timestamp")
    if timestamp is not None:
        if not isinstance(timestamp, str):
            raise wrong_type((*path, "timestamp"), "an ISO 8601 timestamp")
        try:
            out["timestamp"] = datetime.fromisoformat(timestamp.replace("Z", "+00:00")).isoformat()
        except ValueError as error:
            raise PayloadProblem(
                (*path, "timestamp"), "Could not parse the timestamp.", kind="DATE_TIME_TYPE_PARSE"
            ) from error
    color = embed.get("color")
    if color is not None:
        if isinstance(color, bool) or not isinstance(color, int):
            raise wrong_type((*path, "color"), "an integer")
        if not 0 <= color <= MAX_COLOR:
            raise PayloadProblem(
                (*path, "color"), f"Must be between 0 and {MAX_COLOR}.", kind="NUMBER_TYPE_MAX"
            )
        out["color"] = color
    if (footer := _object(embed.get("footer"), (*path, "footer"))) is not None:
        footer_text = text(footer.get("text"), (*path, "footer", "text"), MAX_FOOTER, needed=True)
        assert footer_text is not None
        counted += len(footer_text)
        out["footer"] = {"text": footer_text}
        if (icon := url(footer.get("icon_url"), (*path, "footer", "icon_url"))) is not None:
            out["footer"]["icon_url"] = icon
    for key in ("image", "thumbnail"):
        if (media := _object(embed.get(key), (*path, key))) is not None:
            link = url(media.get("url"), (*path, key, "url"))
            if link is None:
                raise required((*path, key, "url"))
            out[key] = {"url": link}
    if (author := _object(embed.get("author"), (*path, "author"))) is not None:
        name = text(author.get("name"), (*path, "author", "name"), MAX_AUTHOR, needed=True)
        assert name is not None
        counted += len(name)
        out["author"] = {"name": name}
        for key in ("url", "icon_url"):
            if (link := url(author.get(key), (*path, "author", key))) is not None:
                out["author"][key] = link
    fields = embed.get("fields")
    if fields is not None:
        if not isinstance(fields, list):
            raise wrong_type((*path, "fields"), "an array")
        if len(fields) > MAX_FIELDS:
            raise PayloadProblem(
                (*path, "fields"),
                f"Must be {MAX_FIELDS} or fewer in length.",
                kind="BASE_TYPE_MAX_LENGTH",
                code=ErrorCode.LIMIT_REACHED,
            )
        out["fields"] = []
        for i, raw_field in enumerate(fields):
            item = _object(raw_field, (*path, "fields", i))
            assert item is not None
            name = text(item.get("name"), (*path, "fields", i, "name"), MAX_FIELD_NAME, needed=True)
            value = text(item.get("value"), (*path, "fields", i, "value"), MAX_FIELD_VALUE, needed=True)
            assert name is not None and value is not None
            inline = item.get("inline", False)
            if not isinstance(inline, bool):
                raise wrong_type((*path, "fields", i, "inline"), "a boolean")
            counted += len(name) + len(value)
            out["fields"].append({"name": name, "value": value, "inline": inline})
    return out, counted


def validate(raw: Any, path: Path = ("embeds",)) -> list[dict[str, Any]]:
    """The embeds of a payload, normalised (Discord's keys), or PayloadProblem naming the field."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise wrong_type(path, "an array")
    if len(raw) > MAX_EMBEDS:
        raise PayloadProblem(
            path,
            f"Must be {MAX_EMBEDS} or fewer in length.",
            kind="BASE_TYPE_MAX_LENGTH",
            code=ErrorCode.LIMIT_REACHED,
        )
    found: list[dict[str, Any]] = []
    total = 0
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise wrong_type((*path, i), "an object")
        embed, counted = _embed(item, (*path, i))
        if len(embed) == 1:  # only "type": nothing to show
            raise PayloadProblem(
                (*path, i), "Embed is empty.", kind="BASE_TYPE_REQUIRED", code=ErrorCode.REQUIRED
            )
        total += counted
        found.append(embed)
    if total > MAX_TOTAL:
        raise PayloadProblem(
            path,
            f"Embed size exceeds maximum size of {MAX_TOTAL}.",
            kind="MAX_EMBED_SIZE_EXCEEDED",
            code=ErrorCode.TOO_LONG,
        )
    return found


def dump(embeds: Sequence[dict[str, Any]]) -> str | None:
    return json.dumps(list(embeds), separators=(",", ":"), ensure_ascii=False) if embeds else None


def load(stored: str | None) -> list[dict[str, Any]]:
    if not stored:
        return []
    found = json.loads(stored)
    return found if isinstance(found, list) else []
