"""Storage keys: `<scope>/<object id>`, generated here and never derived from a user's file name.

The scope is one to three lowercase ASCII segments chosen by the calling service (a tenant such as
`t1234`, or `avatars/u42`); the object id is 128 random bits in lowercase hex. Everything else is refused,
so a key can never contain `.`, `..`, `\\`, NUL, a leading `/`, upper case (case-insensitive file systems)
or non-ASCII look-alikes: traversal is impossible before any path is built.
"""

from __future__ import annotations

import re
import secrets

from media.errors import InvalidKey

_SEGMENT = r"[a-z0-9][a-z0-9_-]{0,62}"
_SCOPE = rf"{_SEGMENT}(?:/{_SEGMENT}){{0,2}}"
_SCOPE_RE = re.compile(_SCOPE)
_KEY_RE = re.compile(rf"(?P<scope>{_SCOPE})/(?P<object_id>[0-9a-f]{{32}})")
MAX_KEY_LENGTH = 256


def validate_scope(scope: object) -> str:
    if not isinstance(scope, str) or _SCOPE_RE.fullmatch(scope) is None:
        raise InvalidKey("invalid storage scope")
    return scope


def validate_key(key: object) -> str:
    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH or _KEY_RE.fullmatch(key) is None:
        raise InvalidKey("invalid storage key")
    return key


def new_key(scope: str) -> str:
    return f"{validate_scope(scope)}/{secrets.token_hex(16)}"


def split_key(key: str) -> tuple[str, str]:
    """(scope, object id) of a valid key."""
    match = _KEY_RE.fullmatch(validate_key(key))
    assert match is not None
    return match["scope"], match["object_id"]
