"""The interface every search backend implements (SQL full-text in the tenant's shard; Solr).

Backends are told what to index by the `search-index` outbox consumer (indexer.py) and asked to search by
the service (service.py), which has already decided which channels the member may read: a backend must
look only in `request.channel_ids` and only in `request.server_id`'s documents, whatever the query says.
Writes go through the caller's UnitOfWork (the SQL backend writes in the shard's transaction; a backend
with its own storage may write at once: every call is idempotent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.messages.search.documents import SearchDocument, SearchRequest


@dataclass(frozen=True)
class SearchHit:
    message_id: int
    channel_id: int
    score: float  # higher is better; only comparable within one result list


class SearchBackend(Protocol):
    name: str

    async def index(self, uow: UnitOfWork, server_id: int, documents: Sequence[SearchDocument]) -> None:
        """Add or replace these documents (all of one server)."""

    async def remove(
        self, uow: UnitOfWork, server_id: int, channel_id: int, message_ids: Sequence[int]
    ) -> None:
        """Forget these messages of one channel (missing ones are fine)."""

    async def drop_channel(self, uow: UnitOfWork, server_id: int, channel_id: int) -> None:
        """Forget a deleted channel's documents (and whatever the backend kept for it)."""

    async def drop_server(self, uow: UnitOfWork, server_id: int) -> None:
        """Forget every document of a deleted server."""

    async def flush(self, server_id: int) -> None:
        """Make everything written for this server searchable now (a reindex's end; the live path lets
        the backend batch its commits)."""

    async def search(self, uow: UnitOfWork, request: SearchRequest) -> list[SearchHit]:
        """At most `request.limit` hits from `request.offset`, best first (newest first without terms)."""
        ...
