"""A SQLite directory and shard with tenants, and the notification consumer driven over it, for the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from db.engines import Database
from db.ids import DIRECTORY_SHARD, new_id
from db.migrate import upgrade
from db.shardmap import ShardMap
from db.tenants import register_tenant
from subgraphs.channels.models import ChannelRow
from subgraphs.kernel.events import outbox
from subgraphs.kernel.events.bus import InProcessBus
from subgraphs.kernel.events.catalogue import Event
from subgraphs.kernel.tenancy.permissions import DEFAULT_MEMBER_PERMISSIONS
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.messages.events import MessageCreated
from subgraphs.servers.models import MemberRow, RoleRow, ServerRow
from subgraphs.users.models import UserRow
from subgraphs.users.notifications import consumer
from subgraphs.users.notifications.models import NotificationRow

SHARD = 0


@dataclass
class Tenant:
    database: Database
    server_id: int
    channel_id: int
    users: dict[str, int]


async def add_server(
    database: Database, owner_id: int, member_ids: list[int], *, kind: str = "SERVER"
) -> tuple[int, int]:
    """A server of `kind` (registered in the tenant directory) with these members and one text channel,
    which @everyone may view: (server id, channel id)."""
    server_id, channel_id = new_id(SHARD), new_id(SHARD)
    async with database.shard_session(SHARD) as shard, shard.begin():
        shard.add(ServerRow(id=server_id, name="Guild", visibility="PUBLIC", owner_id=owner_id, kind=kind))
        await shard.flush()
        shard.add(
            RoleRow(
                id=server_id,
                server_id=server_id,
                name="@everyone",
                permissions=int(DEFAULT_MEMBER_PERMISSIONS),
                position=0,
            )
        )
        shard.add_all(MemberRow(server_id=server_id, user_id=user_id) for user_id in member_ids)
        shard.add(ChannelRow(id=channel_id, server_id=server_id, name="general", kind="TEXT", parent_id=None))
    async with database.directory_session() as directory, directory.begin():
        await register_tenant(directory, server_id, kind)
    return server_id, channel_id


@pytest.fixture
async def tenant(tmp_path: Path) -> AsyncIterator[Tenant]:
    shard_map = ShardMap.parse(f"0-1=sqlite+aiosqlite:///{tmp_path}/shard_{{shard}}.db", 2)
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/directory.db", shard_map)
    await upgrade(database)
    users = {name: new_id(DIRECTORY_SHARD) for name in ("author", "bob", "carol", "outsider", "extra")}
    async with database.directory_session() as directory, directory.begin():
        directory.add_all(
            UserRow(
                id=user_id,
                username=name,
                username_key=name,
                email=f"{name}@example.test",
                password_hash="",
                first_name=name,
                last_name="Test",
            )
            for name, user_id in users.items()
        )
    members = [users[n] for n in ("author", "bob", "carol", "extra")]
    server_id, channel_id = await add_server(database, users["author"], members)
    yield Tenant(database, server_id, channel_id, users)
    await database.dispose()


def message(t: Tenant, content: str, *, everyone: bool = False) -> MessageCreated:
    return MessageCreated(
        message_id=new_id(SHARD),
        channel_id=t.channel_id,
        server_id=t.server_id,
        author_id=t.users["author"],
        content=content,
        reply_to_id=None,
        created_at=datetime.now(UTC),
        nonce=None,
        mention_everyone=everyone,
    )


def connected(*user_ids: int) -> consumer.Online:
    """Who the presence store says is connected (for @here)."""

    async def online(candidates: Sequence[int]) -> set[int]:
        return set(candidates) & set(user_ids)

    return online


async def handle(t: Tenant, *events: Event, online: consumer.Online = connected()) -> None:
    """Events through the consumer's dispatch, in one transaction (as its handler does)."""
    uow = UnitOfWork(t.database, InProcessBus())
    try:
        async with uow.atomic():
            for event in events:
                await consumer.handle_one(uow, event, datetime.now(UTC), online)
    finally:
        await uow.close()


async def stored(t: Tenant) -> list[tuple[int, str, bool]]:
    async with t.database.directory_session() as directory:
        rows = await directory.scalars(sa.select(NotificationRow).order_by(NotificationRow.user_id))
        return [(r.user_id, r.kind, r.pushed) for r in rows]


async def pushed_topics(t: Tenant) -> list[str]:
    table = outbox.DIRECTORY_TABLES.outbox
    async with t.database.directory_session() as directory:
        return sorted(await directory.scalars(sa.select(table.c.topic).where(table.c.topic.like("user:%"))))
