"""Search documents and the backend contract: query parsing never yields engine syntax, highlighting
escapes everything but its markers, and each backend (SQL on real SQLite shards; Solr on a real Solr 9
node) indexes, replaces, filters, ranks and forgets the same way. For SQL, a deleted message, channel or
server takes its documents with it (FTS5 rows included) even before the indexer hears of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from db.engines import Database
from db.migrate import upgrade
from db.shardmap import ShardMap
from subgraphs.kernel.events.bus import InProcessBus
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.messages.search.backend import SearchBackend
from subgraphs.messages.search.documents import (
    ParsedQuery,
    SearchFilters,
    SearchRequest,
    document_of,
    highlight,
    parse_query,
    terms_of,
)
from subgraphs.messages.search.solr import SolrSearchBackend, lucene_query
from subgraphs.messages.search.sql import SqlSearchBackend, fts5_match, tsquery
from tests.harness.solr import solr_node
from tests.unit.search_cases import HOSTILE

SERVER = 1 << 22  # shard 0 of the id layout: 41 bits of time, 10 of shard, 12 of sequence
CHANNEL, OTHER_CHANNEL = SERVER + 1, SERVER + 2
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_queries_become_plain_folded_words_and_phrases() -> None:
    parsed = parse_query('Hello "Good  Morning" wor-ld Café "single" "unclosed phrase')
    assert parsed.terms == ("hello", "wor", "ld", "cafe", "single")
    assert parsed.phrases == (("good", "morning"), ("unclosed", "phrase"))
    assert terms_of("hi <@123> <#456> there") == ["hi", "there"]


@pytest.mark.parametrize("text", HOSTILE)
def test_no_query_syntax_survives_parsing(text: str) -> None:
    parsed = parse_query(text)
    for word in parsed.all_terms:
        assert word.isalnum()
    match, ts, lucene = fts5_match(parsed), tsquery(parsed), lucene_query(parsed)
    assert match == lucene
    assert all(c.isalnum() or c in ' "' for c in match), match
    assert all(c.isalnum() or c in " '&()<->" for c in ts), ts


def test_highlight_escapes_content_and_marks_only_matched_words() -> None:
    content = "<script>alert(1)</script> Hello & <b>hello</b> <@42> 42"
    marked = highlight(content, parse_query("hello 42"))
    assert marked == (
        "&lt;script&gt;alert(1)&lt;/script&gt; <mark>Hello</mark> &amp; "
        "&lt;b&gt;<mark>hello</mark>&lt;/b&gt; "
        "&lt;@42&gt; <mark>42</mark>"
    )
    assert highlight("<i>x</i>", ParsedQuery()) == "&lt;i&gt;x&lt;/i&gt;"


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    shard_map = ShardMap.parse(f"0-1=sqlite+aiosqlite:///{tmp_path}/shard_{{shard}}.db", 2)
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/directory.db", shard_map)
    await upgrade(db)
    await run(
        db,
        "INSERT INTO servers (id, name, description, visibility, kind, owner_id) "
        "VALUES (:s, 'S', '', 'PUBLIC', 'SERVER', 9)",
        {"s": SERVER},
    )
    for channel_id in (CHANNEL, OTHER_CHANNEL):
        await run(
            db,
            "INSERT INTO channels (id, server_id, name, kind, position) VALUES (:c, :s, 'c', 'TEXT', 0)",
            {"c": channel_id, "s": SERVER},
        )
    yield db
    await db.dispose()


@pytest.fixture(scope="module")
def solr_url() -> Iterator[str]:
    with solr_node() as url:
        yield url


@pytest.fixture(params=["sql", "solr"])
async def backend(request: pytest.FixtureRequest, database: Database) -> AsyncIterator[SearchBackend]:
    found: SearchBackend
    if request.param == "solr":
        found = SolrSearchBackend(request.getfixturevalue("solr_url"))
    else:
        found = SqlSearchBackend()
    await forget_server(database, found)  # Solr's node outlives one test
    yield found


async def forget_server(db: Database, backend: SearchBackend) -> None:
    uow = UnitOfWork(db, InProcessBus())
    try:
        async with uow.atomic():
            await backend.drop_server(uow, SERVER)
    finally:
        await uow.close()


async def run(db: Database, sql: str, params: dict[str, object]) -> None:
    session = db.shard_session(0)
    async with session, session.begin():
        await session.execute(sa.text(sql), params)


async def count(db: Database, sql: str) -> int:
    session = db.shard_session(0)
    async with session:
        return int(await session.scalar(sa.text(sql)) or 0)


def doc(message_id: int, content: str, channel_id: int = CHANNEL, minutes: int = 0, author: int = 9):
    return document_of(
        message_id=message_id,
        channel_id=channel_id,
        server_id=SERVER,
        author_id=author,
        content=content,
        created_at=T0 + timedelta(minutes=minutes),
    )


async def index(db: Database, backend: SearchBackend, *docs: object) -> None:
    for d in docs:
        await run(
            db,
            "INSERT OR IGNORE INTO messages (id, channel_id, server_id, author_id, content) "
            "VALUES (:i, :c, :s, :a, :t)",
            {"i": d.message_id, "c": d.channel_id, "s": SERVER, "a": d.author_id, "t": d.content},  # type: ignore[attr-defined]
        )
    uow = UnitOfWork(db, InProcessBus())
    try:
        async with uow.atomic():
            await backend.index(uow, SERVER, list(docs))  # type: ignore[arg-type]
    finally:
        await uow.close()


async def search(
    db: Database, backend: SearchBackend, text: str, channels: tuple[int, ...] = (CHANNEL,), **filters: object
) -> list[int]:
    uow = UnitOfWork(db, InProcessBus())
    try:
        request = SearchRequest(SERVER, channels, parse_query(text), SearchFilters(**filters), 0, 50)  # type: ignore[arg-type]
        return [hit.message_id for hit in await backend.search(uow, request)]
    finally:
        await uow.close()


async def test_index_search_rank_replace_and_filters(database: Database, backend: SearchBackend) -> None:
    await index(
        database,
        backend,
        doc(SERVER + 10, "kiwi once, among many other words about fruit", minutes=1),
        doc(SERVER + 11, "kiwi kiwi kiwi", minutes=2),
        doc(SERVER + 12, "a link https://example.com/kiwi for <@77>", minutes=3, author=5),
        doc(SERVER + 13, "kiwi in another channel", channel_id=OTHER_CHANNEL),
    )
    assert (await search(database, backend, "kiwi"))[0] == SERVER + 11  # the most kiwi-dense first
    assert set(await search(database, backend, "kiwi")) == {SERVER + 10, SERVER + 11, SERVER + 12}
    assert await search(database, backend, '"kiwi once"') == [SERVER + 10]
    assert await search(database, backend, '"once kiwi"') == []
    assert await search(database, backend, "KIWI", author_id=5) == [SERVER + 12]
    assert await search(database, backend, "", mentions=(77,)) == [SERVER + 12]
    assert await search(database, backend, "", has_link=True) == [SERVER + 12]
    assert await search(database, backend, "", has_image=True) == []
    assert set(await search(database, backend, "kiwi", after=T0 + timedelta(minutes=1, seconds=30))) == {
        SERVER + 11,
        SERVER + 12,
    }
    assert await search(database, backend, "kiwi", before=T0 + timedelta(minutes=1, seconds=30)) == [
        SERVER + 10
    ]
    assert await search(database, backend, "", channels=(OTHER_CHANNEL,)) == [SERVER + 13]
    # replacing a document (an edit) replaces its words
    await index(database, backend, doc(SERVER + 11, "banana now", minutes=2))
    assert set(await search(database, backend, "kiwi")) == {SERVER + 10, SERVER + 12}
    assert await search(database, backend, "banana") == [SERVER + 11]


@pytest.mark.parametrize("text", HOSTILE)
async def test_hostile_queries_stay_in_their_channel(
    database: Database, backend: SearchBackend, text: str
) -> None:
    await index(
        database,
        backend,
        doc(SERVER + 20, f"secret {text}", channel_id=OTHER_CHANNEL),
        doc(SERVER + 21, "public words"),
    )
    assert await search(database, backend, text) == []
    assert await search(database, backend, text, channels=(OTHER_CHANNEL,)) == [SERVER + 20]


async def test_deleting_messages_channels_and_servers_takes_documents_along(database: Database) -> None:
    await index(
        database,
        SqlSearchBackend(),
        doc(SERVER + 30, "alpha <@5>"),
        doc(SERVER + 31, "alpha beta"),
        doc(SERVER + 32, "alpha gamma", channel_id=OTHER_CHANNEL),
    )
    await run(database, "DELETE FROM messages WHERE id = :i", {"i": SERVER + 30})  # cascade, as any path
    assert await search(database, SqlSearchBackend(), "alpha") == [SERVER + 31]
    assert await count(database, "SELECT count(*) FROM search_mentions") == 0
    await run(database, "DELETE FROM channels WHERE id = :c", {"c": CHANNEL})
    assert await search(database, SqlSearchBackend(), "alpha", channels=(CHANNEL, OTHER_CHANNEL)) == [
        SERVER + 32
    ]
    await run(database, "DELETE FROM servers WHERE id = :s", {"s": SERVER})
    assert await count(database, "SELECT count(*) FROM search_documents") == 0
    assert await count(database, "SELECT count(*) FROM search_fts") == 0


async def test_removing_and_dropping_through_the_interface(
    database: Database, backend: SearchBackend
) -> None:
    await index(
        database,
        backend,
        doc(SERVER + 40, "plum one"),
        doc(SERVER + 41, "plum two"),
        doc(SERVER + 42, "plum three", channel_id=OTHER_CHANNEL),
    )
    both = (CHANNEL, OTHER_CHANNEL)
    assert set(await search(database, backend, "plum", channels=both)) == {
        SERVER + 40,
        SERVER + 41,
        SERVER + 42,
    }
    uow = UnitOfWork(database, InProcessBus())
    try:
        async with uow.atomic():
            await backend.remove(uow, SERVER, CHANNEL, [SERVER + 40, SERVER + 999])
        assert set(await search(database, backend, "plum", channels=both)) == {SERVER + 41, SERVER + 42}
        async with uow.atomic():
            await backend.drop_channel(uow, SERVER, OTHER_CHANNEL)
            await backend.drop_channel(uow, SERVER, OTHER_CHANNEL)  # twice: idempotent
        assert await search(database, backend, "plum", channels=both) == [SERVER + 41]
        async with uow.atomic():
            await backend.drop_server(uow, SERVER)
        assert await search(database, backend, "plum", channels=both) == []
    finally:
        await uow.close()


async def test_the_indexer_converges_on_the_messages_table(database: Database) -> None:
    """Replays, duplicates and stale events end with the index equal to the messages as they are now."""
    from subgraphs.channels.events import ChannelDeleted
    from subgraphs.messages.events import MessageCreated, MessageDeleted, MessageUpdated
    from subgraphs.messages.search.indexer import SearchIndexer
    from subgraphs.servers.events import ServerDeleted

    backend = SqlSearchBackend()
    indexer = SearchIndexer(database, InProcessBus(), backend)
    a, b, c = SERVER + 50, SERVER + 51, SERVER + 52
    rows = ((a, CHANNEL, "fig one"), (b, CHANNEL, "fig two"), (c, OTHER_CHANNEL, "fig"))
    for message_id, channel_id, text in rows:
        await run(
            database,
            "INSERT INTO messages (id, channel_id, server_id, author_id, content) VALUES (:i, :c, :s, 9, :t)",
            {"i": message_id, "c": channel_id, "s": SERVER, "t": text},
        )

    def created(message_id: int, channel_id: int = CHANNEL) -> MessageCreated:
        return MessageCreated(message_id, channel_id, SERVER, 9, "stale copy", None, T0, None)

    both = (CHANNEL, OTHER_CHANNEL)
    await indexer.handle(0, [created(a), created(b), created(c, OTHER_CHANNEL)])
    await indexer.handle(0, [created(a), created(b)])  # delivered again
    assert set(await search(database, backend, "fig", channels=both)) == {a, b, c}
    assert await search(database, backend, "stale", channels=both) == []  # the table's text, not the event's

    await run(database, "UPDATE messages SET content = 'date palm' WHERE id = :i", {"i": a})
    await indexer.handle(0, [created(a), MessageUpdated(a, CHANNEL, SERVER, 9, "x", None, T0, T0)])
    assert await search(database, backend, "fig") == [b]
    assert await search(database, backend, "palm") == [a]

    # deleted: a late "created" for it (a replayed batch) must not bring it back
    await run(database, "DELETE FROM messages WHERE id = :i", {"i": b})
    await indexer.handle(0, [created(b), MessageDeleted(b, CHANNEL, SERVER), created(SERVER + 999)])
    assert await search(database, backend, "fig") == []
    assert set(await search(database, backend, "fig", channels=both)) == {c}
    await indexer.handle(0, [ChannelDeleted(OTHER_CHANNEL, SERVER, None)])
    assert await search(database, backend, "fig", channels=both) == []
    await indexer.handle(0, [ServerDeleted(SERVER)])
    assert await count(database, "SELECT count(*) FROM search_documents") == 0


async def test_file_and_image_flags_come_from_the_messages_attachments(database: Database) -> None:
    from subgraphs.messages.search.indexer import attachment_flags

    for message_id in (101, 102, 103):
        await run(
            database,
            "INSERT INTO messages (id, channel_id, server_id, author_id, content) "
            "VALUES (:i, :c, :s, 9, 'x')",
            {"i": message_id, "c": CHANNEL, "s": SERVER},
        )
    for attachment_id, message_id, content_type in (
        (1, 101, "application/pdf"),
        (2, 102, "application/zip"),
        (3, 102, "image/png"),
        (4, None, "image/webp"),  # an upload not attached yet belongs to no message
    ):
        await run(
            database,
            "INSERT INTO attachments (id, message_id, channel_id, server_id, uploader_id, position, "
            "filename, size, content_type, storage_key, created_at) "
            "VALUES (:a, :m, :c, :s, 9, 0, 'f', 1, :t, :k, CURRENT_TIMESTAMP)",
            {
                "a": attachment_id,
                "m": message_id,
                "c": CHANNEL,
                "s": SERVER,
                "t": content_type,
                "k": f"k{attachment_id}",
            },
        )
    async with database.shard_session(0) as session:
        flags = await attachment_flags(session, [101, 102, 103])
    assert flags == {101: (True, False), 102: (True, True)}  # 103: no file, so neither filter matches
