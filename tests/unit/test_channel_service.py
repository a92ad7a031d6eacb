"""Channel rules driven through the service against a throwaway SQLite database: the per-server limit,
concurrent moves that leave positions dense (the layout lock works on SQLite too), and a folder's deletion
removing its channels' rows and messages from storage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.engines import Database
from db.ids import new_id, shard_of
from subgraphs.channels import repository, service
from subgraphs.channels.models import ChannelRow
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import ErrorCode, ValidationFailed
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.messages import service as messages
from subgraphs.messages.models import MessageRow
from subgraphs.servers import service as servers
from tests.harness.sqlite_db import in_transaction, migrated_database

OWNER = Principal(user_id=2001, username="owner", token_id=None, expires_at=0)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async with migrated_database(tmp_path) as db:
        yield db


async def _server(db: Database) -> int:
    async def create(uow: UnitOfWork) -> int:
        server = await servers.create_server(uow, OWNER, servers.NewServer("Big", "PRIVATE", None), 1)
        return server.id

    return await in_transaction(db, create)


async def _create(
    db: Database, server_id: int, name: str, kind: str = "TEXT", parent: int | None = None
) -> int:
    async def create(uow: UnitOfWork) -> int:
        row = await service.create_channel(uow, OWNER, service.NewChannel(server_id, name, kind, parent))
        return row.id

    return await in_transaction(db, create)


async def test_a_server_has_at_most_500_channels(database: Database) -> None:
    assert service.MAX_CHANNELS == 500
    server_id = await _server(database)
    folder = await _create(database, server_id, "folder", "FOLDER")

    async def fill(uow: UnitOfWork) -> None:  # up to 499 rows straight in: the rule only counts them
        session = await uow.for_entity(server_id)
        existing = len(await repository.channels_of_servers(session, [server_id]))  # defaults + folder
        for i in range(service.MAX_CHANNELS - 1 - existing):
            repository.add_channel(
                session,
                ChannelRow(
                    id=new_id(shard_of(server_id)),
                    server_id=server_id,
                    name=f"c{i}",
                    kind="TEXT",
                    parent_id=None,
                    position=i + 1,
                    created_at=datetime.now(UTC),
                ),
            )

    await in_transaction(database, fill)
    last = await _create(database, server_id, "the 500th", parent=folder)  # folders count, children too
    with pytest.raises(ValidationFailed) as refused:
        await _create(database, server_id, "one too many")
    assert (refused.value.code, refused.value.field) == (ErrorCode.LIMIT_REACHED, "serverId")
    with pytest.raises(ValidationFailed):
        await _create(database, server_id, "another folder", "FOLDER")

    await in_transaction(database, lambda uow: service.delete_channel(uow, OWNER, last))
    assert await _create(database, server_id, "room again")


async def test_concurrent_moves_keep_positions_dense(database: Database) -> None:
    server_id = await _server(database)
    folder = await _create(database, server_id, "folder", "FOLDER")
    channels = [await _create(database, server_id, f"c{i}") for i in range(6)]

    async def move(channel_id: int, parent: int | None, position: int) -> None:
        await in_transaction(
            database, lambda uow: service.move_channel(uow, OWNER, channel_id, parent, position)
        )

    await asyncio.gather(
        *(move(c, folder if i % 2 else None, 0) for i, c in enumerate(channels)),
    )

    async def layout(uow: UnitOfWork) -> list[ChannelRow]:
        return await repository.channels_of_servers(await uow.for_entity(server_id), [server_id])

    rows = await in_transaction(database, layout)
    for parent in (None, folder):
        group = [r for r in rows if r.parent_id == parent]
        assert sorted(r.position for r in group) == list(range(len(group))), parent
    assert len([r for r in rows if r.parent_id == folder]) == 3


async def test_deleting_a_folder_removes_its_channels_and_their_messages(database: Database) -> None:
    server_id = await _server(database)

    async def layout(uow: UnitOfWork) -> list[int]:
        return [
            r.id for r in await repository.channels_of_servers(await uow.for_entity(server_id), [server_id])
        ]

    defaults = await in_transaction(database, layout)  # a new server's #general and General
    folder = await _create(database, server_id, "folder", "FOLDER")
    inside = [await _create(database, server_id, name, parent=folder) for name in ("x", "y")]
    kept = await _create(database, server_id, "kept")
    for channel_id in [*inside, kept]:
        await in_transaction(
            database,
            lambda uow, c=channel_id: messages.send_message(
                uow, OWNER, messages.NewMessage(c, "hello", None, None)
            ),
        )

    deleted = await in_transaction(database, lambda uow: service.delete_channel(uow, OWNER, folder))
    assert [c.id for c in deleted.children] == inside

    async def stored(uow: UnitOfWork) -> tuple[list[int], list[int]]:
        session = await uow.for_entity(server_id)
        channels = await session.scalars(select(ChannelRow.id).where(ChannelRow.server_id == server_id))
        by_channel = await session.scalars(
            select(MessageRow.channel_id).group_by(MessageRow.channel_id).having(func.count() > 0)
        )
        return list(channels), list(by_channel)

    channels, with_messages = await in_transaction(database, stored)
    assert (sorted(channels), with_messages) == (sorted([*defaults, kept]), [kept])
