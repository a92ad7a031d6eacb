"""Searching a server's messages: who may look where, input limits, and paging. Never writes.

A member searches only the channels they can view AND read the history of (the same rule as a page of
history); everything else, including a channel they name but cannot read, is simply not searched. A
non-member (or a removed member) gets null, exactly as for a server that does not exist.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from subgraphs.kernel.errors import BeepGraphQLError, TopLevelCode
from subgraphs.kernel.tenancy import access
from subgraphs.kernel.tenancy.access_checks import access_server, or_none
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.messages.search.backend import SearchBackend, SearchHit
from subgraphs.messages.search.documents import (
    MAX_MENTIONS_FILTER,
    MAX_QUERY_LENGTH,
    MAX_QUERY_TERMS,
    ParsedQuery,
    SearchFilters,
    SearchRequest,
    parse_query,
)

MAX_RESULTS_REACHABLE = 1000  # paging stops here: narrow the search instead
DEFAULT_PAGE = 25
MAX_PAGE = 50


def _bad(message: str, argument: str, **extensions: Any) -> BeepGraphQLError:
    return BeepGraphQLError(message, TopLevelCode.BAD_USER_INPUT, argument=argument, **extensions)


@dataclass(frozen=True)
class SearchInput:
    server_id: int
    channel_id: int | None
    query: str
    author_id: int | None
    mentions: tuple[int, ...]
    has_link: bool
    has_file: bool
    has_image: bool
    before: datetime | None
    after: datetime | None
    first: int | None
    cursor: str | None


@dataclass(frozen=True)
class SearchPage:
    hits: list[SearchHit]
    query: ParsedQuery
    offset: int
    has_next_page: bool


def encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(f"search:{offset}".encode()).decode().rstrip("=")


def decode_offset(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raw = ""
    number = raw.removeprefix("search:")
    if not raw.startswith("search:") or not number.isdigit() or len(number) > 6:
        raise _bad("'cursor' is not a valid search cursor.", "cursor")
    return int(number)


def validate(data: SearchInput) -> tuple[ParsedQuery, SearchFilters, int, int]:
    if len(data.query) > MAX_QUERY_LENGTH:
        raise _bad(
            f"The query is too long: at most {MAX_QUERY_LENGTH} characters.",
            "query",
            maxLength=MAX_QUERY_LENGTH,
        )
    parsed = parse_query(data.query)
    if len(parsed.terms) + sum(len(p) for p in parsed.phrases) > MAX_QUERY_TERMS:
        raise _bad(
            f"The query has too many words: at most {MAX_QUERY_TERMS}.", "query", maxTerms=MAX_QUERY_TERMS
        )
    if len(data.mentions) > MAX_MENTIONS_FILTER:
        raise _bad(
            f"At most {MAX_MENTIONS_FILTER} users in 'mentions'.", "mentions", maxItems=MAX_MENTIONS_FILTER
        )
    if data.before is not None and data.after is not None and data.before <= data.after:
        raise _bad("'before' must be later than 'after'.", "before")
    for name, moment in (("before", data.before), ("after", data.after)):
        if moment is not None and moment.tzinfo is None:
            raise _bad(f"'{name}' needs a time zone (e.g. 2026-01-31T12:00:00Z).", name)
    first = DEFAULT_PAGE if data.first is None else data.first
    if not 1 <= first <= MAX_PAGE:
        raise _bad(f"'first' must be between 1 and {MAX_PAGE}.", "first")
    offset = decode_offset(data.cursor) if data.cursor else 0
    if offset >= MAX_RESULTS_REACHABLE:
        raise _bad(
            f"Only the first {MAX_RESULTS_REACHABLE} results can be paged to: narrow the search.", "cursor"
        )
    filters = SearchFilters(
        author_id=data.author_id,
        mentions=tuple(dict.fromkeys(data.mentions)),
        has_link=data.has_link,
        has_file=data.has_file,
        has_image=data.has_image,
        before=data.before,
        after=data.after,
    )
    return parsed, filters, first, offset


async def searchable_channels(
    uow: UnitOfWork, user_id: int, server_id: int, channel_id: int | None
) -> set[int] | None:
    """The channels of the server the user may search (view + read history); None unless a member."""
    if await or_none(access_server(uow, user_id, server_id)) is None:
        return None
    session = await uow.for_entity(server_id)
    visible = await access.visible_channels_of_server(session, server_id, user_id)
    if channel_id is not None:
        visible &= {channel_id}
    found = await access.channel_accesses(session, sorted(visible), user_id)
    return {cid for cid, channel in found.items() if channel.can_read}


async def search_messages(
    uow: UnitOfWork, backend: SearchBackend, user_id: int | None, data: SearchInput
) -> SearchPage | None:
    parsed, filters, first, offset = validate(data)
    if user_id is None:
        return None
    channels = await searchable_channels(uow, user_id, data.server_id, data.channel_id)
    if channels is None:
        return None
    if not channels or (parsed.empty and data.query.strip()):  # words, but none searchable: nothing matches
        return SearchPage([], parsed, offset, has_next_page=False)
    limit = min(first, MAX_RESULTS_REACHABLE - offset)
    request = SearchRequest(
        server_id=data.server_id,
        channel_ids=tuple(sorted(channels)),
        query=parsed,
        filters=filters,
        offset=offset,
        limit=limit + 1,
    )
    hits = [h for h in await backend.search(uow, request) if h.channel_id in channels]
    more = len(hits) > limit and offset + limit < MAX_RESULTS_REACHABLE
    return SearchPage(hits[:limit], parsed, offset, has_next_page=more)
