"""Discovering public servers across every shard. Reads only.

For now this scatters one bounded query (LIMIT page + 1, keyset after the cursor) over every logical
shard and merges the answers: a case-insensitive substring match (SQL LIKE) on name and description,
exact-prefix name matches first. It costs one query per logical shard per page and cannot use an index;
the search issue replaces it with a search index fed by server events (ranking by relevance and member
and online counts included), behind the same `discoverServers` field.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from db.ids import parse_id
from subgraphs.kernel.tenancy import access
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.validation import clean_text
from subgraphs.servers import repository
from subgraphs.servers.models import ServerRow

MAX_QUERY_LENGTH = 100
# A page's servers may lie in as many shards as it has servers, and resolving their fields elsewhere (the
# channels subgraph's Server.channels, say) opens one request-long session per shard; 20 keeps that
# within one physical database's default pool (twice BEEP_DB_POOL_SIZE: 20 connections).
MAX_PAGE = 20
DEFAULT_PAGE = 20


@dataclass(frozen=True)
class Position:
    """Where a page ends in the ranked order: (rank, server id)."""

    rank: int
    server_id: int


@dataclass(frozen=True)
class Discovered:
    server: ServerRow
    position: Position
    member_count: int
    viewer_is_member: bool


@dataclass(frozen=True)
class DiscoveryPage:
    found: list[Discovered]
    has_next_page: bool


def clean_query(raw: str) -> str:
    return clean_text(raw, "query", min_len=0, max_len=MAX_QUERY_LENGTH)


def encode_cursor(position: Position) -> str:
    raw = f"discover:{position.rank}:{position.server_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position | None:
    """None when the cursor is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    prefix, _, rest = raw.partition(":")
    rank, _, server_id = rest.partition(":")
    parsed = parse_id(server_id)
    if prefix != "discover" or rank not in ("0", "1") or parsed is None:
        return None
    return Position(int(rank), parsed)


async def discover(
    uow: UnitOfWork,
    viewer_id: int | None,
    query: str,
    *,
    first: int,
    after: Position | None,
    logical_shards: int,
) -> DiscoveryPage:
    """Public servers matching `query` (already cleaned), ranked, `first` of them after `after`; with
    their member counts and the viewer's membership, read in the same pass so the page's fields need not
    open the shards again."""
    candidates: list[Discovered] = []
    keyset = (after.rank, after.server_id) if after else None
    for shard in range(logical_shards):
        # One shard at a time, each session closed at once (see UnitOfWork.reading): one physical
        # database holds more logical shards than its pool has connections.
        async with uow.reading(shard) as session:
            ranked = await repository.discoverable_servers(session, query, after=keyset, limit=first + 1)
            if not ranked:
                continue
            ids = [r.server.id for r in ranked]
            counts = await repository.member_counts(session, ids)
            joined = await access.member_server_ids(session, ids, viewer_id)
        candidates.extend(
            Discovered(
                r.server, Position(r.rank, r.server.id), counts.get(r.server.id, 0), r.server.id in joined
            )
            for r in ranked
        )
    candidates.sort(key=lambda d: (d.position.rank, d.position.server_id))
    return DiscoveryPage(candidates[:first], len(candidates) > first)
