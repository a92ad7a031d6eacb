"""Cursor connections (Relay style). Cursors are opaque to clients; here they wrap a time-ordered ID."""

from __future__ import annotations

import base64

import strawberry

from db.ids import parse_id
from subgraphs.kernel.errors import bad_user_input

MAX_PAGE = 100


@strawberry.federation.type(shareable=True)
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items after the last edge (older items).")
    has_previous_page: bool = strawberry.field(description="More items before the first edge (newer items).")
    start_cursor: str | None
    end_cursor: str | None


def page_info(cursors: list[str], *, has_next_page: bool, has_previous_page: bool) -> PageInfo:
    """The PageInfo of a page whose edges carry these cursors, in order."""
    return PageInfo(
        has_next_page=has_next_page,
        has_previous_page=has_previous_page,
        start_cursor=cursors[0] if cursors else None,
        end_cursor=cursors[-1] if cursors else None,
    )


def encode_cursor(entity_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{entity_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, argument: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raw = ""
    value = parse_id(raw[3:]) if raw.startswith("id:") else None
    if value is None:
        raise bad_user_input(f"'{argument}' is not a valid cursor.", argument)
    return value


def page_size(first: int | None, default: int = 50) -> int:
    if first is None:
        return default
    if not 1 <= first <= MAX_PAGE:
        raise bad_user_input(f"'first' must be between 1 and {MAX_PAGE}.", "first")
    return first
