"""Well-formed input: what every request must be before any rule looks at it.

JSON may carry what no Beep value can hold: text with a lone UTF-16 surrogate (`"\\ud800"` is valid JSON
escaping but no Unicode scalar value, so no database, encoder or GraphQL String can take it) or a NUL
character (`"\\u0000"`, which PostgreSQL text cannot store), or nesting so deep that decoding it exhausts
the stack. Both are the sender's fault and are answered as such
(BAD_USER_INPUT, or 400 before GraphQL) instead of failing later as a server error.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Deeper than any Beep payload (a webhook's embeds are 3 levels, GraphQL variables a few more).
MAX_JSON_DEPTH = 64

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


INVALID_TEXT = "text no message can hold (a NUL character or a lone surrogate)"


class MalformedJSON(ValueError):
    """The body is not JSON Beep can take; the message says why, for the sender."""


def is_unstorable(text: str) -> bool:
    """Whether `text` holds a NUL or a UTF-16 surrogate (which Python strings only do when it was
    unpaired: a JSON pair such as "\\ud83d\\ude00" decodes to one character)."""
    return _UNSTORABLE.search(text) is not None


def invalid_text_path(value: Any) -> list[str | int] | None:
    """The path to the first string (or object key) in a decoded JSON value that holds a NUL or a lone
    surrogate, or None when there is none. Walks without recursion, so any depth is safe."""
    pending: list[tuple[list[str | int], Any]] = [([], value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            if is_unstorable(item):
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and is_unstorable(key):
                    return path
                pending.append(([*path, key], child))
        elif isinstance(item, list):
            pending.extend(([*path, index], child) for index, child in enumerate(item))
    return None


def depth_of(value: Any) -> int:
    """How deeply arrays and objects nest in a decoded JSON value (a scalar is 0, `[]` 1, `{"a": []}` 2),
    without recursion."""
    deepest = 0
    pending: list[tuple[int, Any]] = [(0, value)]
    while pending:
        depth, item = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
            pending.extend(
                (depth + 1, child) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def loads(data: str | bytes, *, max_depth: int = MAX_JSON_DEPTH, text: bool = True) -> Any:
    """`json.loads`, refusing (MalformedJSON) nesting deeper than `max_depth` and, with `text`, strings
    holding a NUL or a lone surrogate. Invalid JSON raises json.JSONDecodeError as usual."""
    try:
        value = json.loads(data)
    except RecursionError as error:  # the decoder recurses per level: ~1,000 levels exhaust it
        raise MalformedJSON(f"The JSON is nested more than {max_depth} levels deep.") from error
    if depth_of(value) > max_depth:
        raise MalformedJSON(f"The JSON is nested more than {max_depth} levels deep.")
    if text and invalid_text_path(value) is not None:
        raise MalformedJSON(f"The JSON holds {INVALID_TEXT}.")
    return value
