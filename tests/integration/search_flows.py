"""Searching messages and waiting for the indexer, for the tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import httpx
import sqlalchemy as sa

from db.ids import shard_of
from subgraphs.messages.search.models import SearchDocumentRow
from subgraphs.messages.search.solr import SolrSearchBackend
from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import _database

SEARCH = """query($s: ID!, $c: ID, $q: String, $a: ID, $m: [ID!], $h: [SearchHas!], $b: DateTime,
  $af: DateTime, $f: Int, $cur: String) {
  searchMessages(serverId: $s, channelId: $c, query: $q, author: $a, mentions: $m, has: $h, before: $b,
    after: $af, first: $f, afterCursor: $cur) {
    edges { cursor highlight node { id content channel { id } } }
    pageInfo { hasNextPage hasPreviousPage endCursor } } }"""


WAIT = 20.0


DOCUMENTS = cast(sa.Table, SearchDocumentRow.__table__)


async def search(client: GraphQLClient, server_id: str, **args: Any) -> dict[str, Any] | None:
    data = await client.data(SEARCH, {"s": server_id, **args})
    return data["searchMessages"]


def ids(found: dict[str, Any] | None) -> list[str]:
    assert found is not None
    return [e["node"]["id"] for e in found["edges"]]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = WAIT) -> None:
    """The index follows the outbox: poll until it has caught up."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "the search index did not catch up"
        await asyncio.sleep(0.2)


async def found_ids(client: GraphQLClient, server_id: str, want: set[str], **args: Any) -> None:
    async def check() -> bool:
        return set(ids(await search(client, server_id, **args))) == want

    await eventually(check)


async def _documents(stack: Stack, server_id: str, channel_id: str | None = None) -> int:
    """How many documents the stack's backend holds for a server (or one of its channels)."""
    solr_url = stack.env.get("BEEP_SEARCH_SOLR_URL")
    if solr_url:
        backend = SolrSearchBackend(solr_url)
        cores = sorted(
            core
            for core in await backend.cores(refresh=True)
            if core.startswith(f"s{server_id}_c")
            and (channel_id is None or core == f"s{server_id}_c{channel_id}")
        )
        total = 0
        async with httpx.AsyncClient() as client:
            for core in cores:
                found = await client.get(f"{solr_url}/{core}/select", params={"q": "*:*", "rows": "0"})
                if found.status_code != 404:  # unloaded since it was listed: nothing left in it
                    total += int(found.json()["response"]["numFound"])
        return total
    database = _database(stack)
    where = DOCUMENTS.c.server_id == int(server_id)
    if channel_id is not None:
        where = DOCUMENTS.c.channel_id == int(channel_id)
    try:
        session = database.shard_session(shard_of(int(server_id)))
        async with session:
            query = sa.select(sa.func.count()).select_from(DOCUMENTS).where(where)
            return int(await session.scalar(query) or 0)
    finally:
        await database.dispose()


async def no_documents(stack: Stack, server_id: str, channel_id: str | None = None) -> None:
    async def check() -> bool:
        return await _documents(stack, server_id, channel_id) == 0

    await eventually(check)
