"""Keeps the search index in step with messages: the `search-index` outbox consumer, and reindexing.

The consumer never trusts an event's copy of the text: for every message an event names, it reads the
message as it is now and indexes that (or forgets it when it is gone). So a batch replayed after a crash,
events arriving twice, or an edit racing a delete all end with the index equal to the messages table.
Channel and server deletions drop their documents (the SQL backend's cascade has usually done it).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.engines import Database
from subgraphs.kernel.events.bus import EventBus
from subgraphs.kernel.events.catalogue import Event
from subgraphs.kernel.tenancy.access import hold_tenant
from subgraphs.kernel.tenancy.uow import UnitOfWork, retrying_moves
from subgraphs.messages.events import MessageCreated, MessageDeleted, MessageUpdated
from subgraphs.messages.models import AttachmentRow, MessageRow
from subgraphs.messages.search.backend import SearchBackend
from subgraphs.messages.search.documents import SearchDocument, document_of

log = logging.getLogger("beep.search")
REINDEX_BATCH = 500

# Defined by the channels and servers contexts (the worker imports them so they decode); matched by name
# because one subgraph does not import another.
CHANNEL_DELETED = "ChannelDeleted"
SERVER_DELETED = "ServerDeleted"


async def attachment_flags(session: AsyncSession, message_ids: Sequence[int]) -> dict[int, tuple[bool, bool]]:
    """(has a file, has an image) per message, from its attachments (an image: an image/* type sniffed
    from its bytes)."""
    if not message_ids:
        return {}
    rows = await session.execute(
        sa.select(AttachmentRow.message_id, AttachmentRow.content_type).where(
            AttachmentRow.message_id.in_(message_ids)
        )
    )
    flags: dict[int, tuple[bool, bool]] = {}
    for message_id, content_type in rows:
        if message_id is None:
            continue
        _file, image = flags.get(message_id, (False, False))
        flags[message_id] = (True, image or content_type.startswith("image/"))
    return flags


async def documents_for(session: AsyncSession, rows: Sequence[MessageRow]) -> list[SearchDocument]:
    flags = await attachment_flags(session, [r.id for r in rows])
    return [
        document_of(
            message_id=r.id,
            channel_id=r.channel_id,
            server_id=r.server_id,
            author_id=r.author_id,
            content=r.content,
            created_at=r.created_at,
            has_file=flags.get(r.id, (False, False))[0],
            has_image=flags.get(r.id, (False, False))[1],
        )
        for r in rows
    ]


class SearchIndexer:
    """The `search-index` consumer."""

    name = "search-index"

    def __init__(self, database: Database, bus: EventBus, backend: SearchBackend) -> None:
        self._database = database
        self._bus = bus
        self.backend = backend

    async def handle(self, _store: int, events: list[Event]) -> None:
        touched: dict[tuple[int, int], set[int]] = defaultdict(set)  # (server, channel) -> message ids
        dropped_channels: set[tuple[int, int]] = set()
        dropped_servers: set[int] = set()
        for event in events:
            if isinstance(event, MessageCreated | MessageUpdated | MessageDeleted):
                touched[(event.server_id, event.channel_id)].add(event.message_id)
            elif event.type_name == CHANNEL_DELETED:
                fields = vars(event)
                dropped_channels.add((int(fields["server_id"]), int(fields["channel_id"])))
            elif event.type_name == SERVER_DELETED:
                dropped_servers.add(int(vars(event)["server_id"]))
        for server_id in sorted({s for s, _ in touched} - dropped_servers):
            await self.refresh(
                server_id,
                {
                    c: ids
                    for (s, c), ids in touched.items()
                    if s == server_id and (s, c) not in dropped_channels
                },
            )
        for server_id, channel_id in sorted(dropped_channels):
            if server_id not in dropped_servers:
                await self._write(partial(self._drop_channel, server_id, channel_id))
        for server_id in sorted(dropped_servers):
            await self._write(partial(self._drop_server, server_id))

    async def _drop_channel(self, server_id: int, channel_id: int, uow: UnitOfWork) -> None:
        await self.backend.drop_channel(uow, server_id, channel_id)

    async def _drop_server(self, server_id: int, uow: UnitOfWork) -> None:
        await self.backend.drop_server(uow, server_id)

    async def refresh(self, server_id: int, by_channel: dict[int, set[int]]) -> None:
        """Index these messages as they are now; forget the ones that are gone."""
        uow = UnitOfWork(self._database, self._bus)
        try:
            await retrying_moves(uow, partial(self._refresh, uow, server_id, by_channel))
        finally:
            await uow.close()

    async def _refresh(self, uow: UnitOfWork, server_id: int, by_channel: dict[int, set[int]]) -> None:
        session = await uow.for_entity(server_id)
        await hold_tenant(session, server_id)
        wanted = sorted({i for ids in by_channel.values() for i in ids})
        rows = list(
            await session.scalars(
                sa.select(MessageRow)
                .where(MessageRow.id.in_(wanted))
                .execution_options(populate_existing=True)
            )
        )
        present = {r.id for r in rows}
        for channel_id, ids in by_channel.items():
            gone = sorted(ids - present)
            if gone:
                await self.backend.remove(uow, server_id, channel_id, gone)
        await self.backend.index(uow, server_id, await documents_for(session, rows))

    async def _write(self, action: Callable[[UnitOfWork], Awaitable[None]]) -> None:
        uow = UnitOfWork(self._database, self._bus)
        try:
            await retrying_moves(uow, partial(action, uow))
        finally:
            await uow.close()


async def _pages(session: AsyncSession, where: sa.ColumnElement[bool]) -> AsyncIterator[list[MessageRow]]:
    after = 0
    while True:
        rows = list(
            await session.scalars(
                sa.select(MessageRow)
                .where(where, MessageRow.id > after)
                .order_by(MessageRow.id)
                .limit(REINDEX_BATCH)
            )
        )
        if not rows:
            return
        yield rows
        after = rows[-1].id


async def reindex(
    database: Database,
    bus: EventBus,
    backend: SearchBackend,
    *,
    server_id: int,
    channel_id: int | None = None,
) -> int:
    """Rebuild a channel's (or a whole server's) documents from the messages table; returns how many.

    The old documents are dropped first, then pages of 500 messages are indexed, each in its own
    transaction; the live consumer may index the same messages meanwhile (both write what the table says).
    """
    uow = UnitOfWork(database, bus)
    try:
        async with uow.atomic():
            if channel_id is None:
                await backend.drop_server(uow, server_id)
            else:
                await backend.drop_channel(uow, server_id, channel_id)
    finally:
        await uow.close()
    where = MessageRow.server_id == server_id if channel_id is None else MessageRow.channel_id == channel_id
    count = 0
    reader = database.shard_session(await _shard_of(database, bus, server_id))
    try:
        async for rows in _pages(reader, where):
            uow = UnitOfWork(database, bus)
            try:
                async with uow.atomic():
                    await backend.index(
                        uow, server_id, await documents_for(await uow.for_entity(server_id), rows)
                    )
            finally:
                await uow.close()
            count += len(rows)
    finally:
        await reader.close()
    await backend.flush(server_id)  # "reindexed" means searchable
    return count


async def _shard_of(database: Database, bus: EventBus, server_id: int) -> int:
    uow = UnitOfWork(database, bus)
    try:
        return await uow.shard_for(server_id)
    finally:
        await uow.close()


async def server_of_channel(database: Database, bus: EventBus, channel_id: int) -> int | None:
    """The server of a channel, read from its messages (a channel without messages has nothing to index)."""
    uow = UnitOfWork(database, bus)
    try:
        session = await uow.for_entity(channel_id)
        return await session.scalar(
            sa.select(MessageRow.server_id).where(MessageRow.channel_id == channel_id).limit(1)
        )
    finally:
        await uow.close()
