"""The SQL full-text backend, in the tenant's shard: SQLite FTS5 (embedded), PostgreSQL tsvector + GIN.

The match expression is built only from `ParsedQuery` terms (letters and digits, folded), each one quoted,
and passed as a bound parameter; the channel and server filters are ordinary SQL conditions next to it.
Ranking: FTS5's bm25 (lower is better) and PostgreSQL's ts_rank_cd normalised by length; ties go to the
newer message. Without terms (filters only) the newest messages come first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.messages.search.backend import SearchHit
from subgraphs.messages.search.documents import ParsedQuery, SearchDocument, SearchRequest
from subgraphs.messages.search.models import SearchDocumentRow, SearchMentionRow

D = cast(sa.Table, SearchDocumentRow.__table__)
M = cast(sa.Table, SearchMentionRow.__table__)
_FTS_MATCH = sa.text("search_fts MATCH :match")  # SQLite: the shard is the file's main schema
_FTS_RANK: sa.ColumnElement[float] = sa.literal_column("bm25(search_fts)")
_FTS = sa.table("search_fts", sa.column("rowid"))


def fts5_match(query: ParsedQuery) -> str:
    """`"a" "b c"`: each term a quoted string, each phrase one, implicitly ANDed. Terms are letters and
    digits only (documents.terms_of), so no FTS5 operator or column filter can appear."""
    parts = [f'"{t}"' for t in query.terms] + [f'"{" ".join(p)}"' for p in query.phrases]
    return " ".join(parts)


def tsquery(query: ParsedQuery) -> str:
    """`'a' & ('b' <-> 'c')` for to_tsquery('simple', ...); terms are letters and digits only."""
    parts = [f"'{t}'" for t in query.terms] + [
        "(" + " <-> ".join(f"'{t}'" for t in p) + ")" for p in query.phrases
    ]
    return " & ".join(parts)


def _vector() -> sa.ColumnElement[object]:
    # Must match the s0080 expression index exactly for PostgreSQL to use it.
    return sa.func.to_tsvector(sa.literal_column("'simple'::regconfig"), D.c.terms)


class SqlSearchBackend:
    name = "sql"

    async def _session(self, uow: UnitOfWork, server_id: int) -> AsyncSession:
        return await uow.for_entity(server_id)

    async def index(self, uow: UnitOfWork, server_id: int, documents: Sequence[SearchDocument]) -> None:
        if not documents:
            return
        session = await self._session(uow, server_id)
        await self._delete(session, D.c.message_id.in_([d.message_id for d in documents]))
        await session.execute(sa.insert(D), [d.fields() for d in documents])
        mentions = [
            {"message_id": d.message_id, "user_id": u, "server_id": d.server_id}
            for d in documents
            for u in d.mentions
        ]
        if mentions:
            await session.execute(sa.insert(M), mentions)

    async def remove(
        self, uow: UnitOfWork, server_id: int, channel_id: int, message_ids: Sequence[int]
    ) -> None:
        if message_ids:
            session = await self._session(uow, server_id)
            await self._delete(session, D.c.message_id.in_(list(message_ids)))

    async def drop_channel(self, uow: UnitOfWork, server_id: int, channel_id: int) -> None:
        session = await self._session(uow, server_id)
        await self._delete(session, D.c.channel_id == channel_id)

    async def drop_server(self, uow: UnitOfWork, server_id: int) -> None:
        session = await self._session(uow, server_id)
        await self._delete(session, D.c.server_id == server_id)

    async def flush(self, server_id: int) -> None:
        return None  # searchable at commit

    async def _delete(self, session: AsyncSession, where: sa.ColumnElement[bool]) -> None:
        # Mentions cascade; on SQLite the triggers of s0080 keep the FTS5 rows equal to the documents.
        await session.execute(sa.delete(D).where(where))

    async def search(self, uow: UnitOfWork, request: SearchRequest) -> list[SearchHit]:
        if not request.channel_ids:
            return []
        session = await self._session(uow, request.server_id)
        sqlite = session.get_bind().dialect.name == "sqlite"
        score: sa.ColumnElement[float]
        order: list[sa.ColumnElement[Any]]
        if request.query.empty:
            score = sa.literal(0.0)
            query = sa.select(D.c.message_id, D.c.channel_id, score.label("score"))
            order = [D.c.message_id.desc()]
        elif sqlite:
            score = -_FTS_RANK
            query = (
                sa.select(D.c.message_id, D.c.channel_id, score.label("score"))
                .select_from(_FTS.join(D, D.c.message_id == _FTS.c.rowid))
                .where(_FTS_MATCH.bindparams(match=fts5_match(request.query)))
            )
            order = [_FTS_RANK, D.c.message_id.desc()]
        else:
            parsed = sa.func.to_tsquery(sa.literal_column("'simple'::regconfig"), tsquery(request.query))
            score = sa.func.ts_rank_cd(_vector(), parsed, 1)  # 1: divided by 1 + log(length)
            query = sa.select(D.c.message_id, D.c.channel_id, score.label("score")).where(
                _vector().op("@@")(parsed)
            )
            order = [score.desc(), D.c.message_id.desc()]
        query = query.where(
            D.c.server_id == request.server_id,
            D.c.channel_id.in_(list(request.channel_ids)),
            *_filters(request),
        )
        rows = await session.execute(query.order_by(*order).offset(request.offset).limit(request.limit))
        return [SearchHit(row.message_id, row.channel_id, float(row.score)) for row in rows]


def _filters(request: SearchRequest) -> list[sa.ColumnElement[bool]]:
    f = request.filters
    found: list[sa.ColumnElement[bool]] = []
    if f.author_id is not None:
        found.append(D.c.author_id == f.author_id)
    for user_id in f.mentions:
        found.append(sa.exists().where(M.c.message_id == D.c.message_id, M.c.user_id == user_id))
    for flag, column in (
        (f.has_link, D.c.has_link),
        (f.has_file, D.c.has_file),
        (f.has_image, D.c.has_image),
    ):
        if flag:
            found.append(column.is_(True))
    if f.before is not None:
        found.append(D.c.created_at < f.before.astimezone(UTC))
    if f.after is not None:
        found.append(D.c.created_at > f.after.astimezone(UTC))
    return found
