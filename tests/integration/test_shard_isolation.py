"""Isolation in the data-access layer: a tenant's queries only ever reach its own logical shard.

Runs on SQLite (a file per shard) and on PostgreSQL (a schema per shard, the two tenants in different
physical databases), seeding through the real services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from db import migrate
from db.engines import Database
from db.ids import shard_of
from db.shardmap import ShardMap
from db.tenants import Tenant
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.events.bus import InProcessBus
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.messages import service as messages
from subgraphs.messages.models import MessageRow
from tests.harness.stack import Stack
from tests.integration.flows import _tenant

SHARD_A, SHARD_B = 3, 40
ALICE = Principal(user_id=1001, username="alice", token_id=None, expires_at=0)
BOB = Principal(user_id=1002, username="bob", token_id=None, expires_at=0)


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        db = Database(
            f"sqlite+aiosqlite:///{tmp_path}/directory.db",
            ShardMap.parse(f"0-63=sqlite+aiosqlite:///{tmp_path}/shard_{{shard}}.db", 64),
        )
    else:
        full_stack: Stack = request.getfixturevalue("full_stack")
        directory, shards_a, shards_b = full_stack.database_urls
        db = Database(directory, ShardMap.parse(f"0-31={shards_a};32-63={shards_b}", 64))
    await migrate.upgrade(db)
    yield db
    await db.dispose()


async def test_a_tenants_queries_touch_only_its_shard(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_server, a_channel = await _tenant(database, ALICE, SHARD_A, monkeypatch)
    b_server, b_channel = await _tenant(database, BOB, SHARD_B, monkeypatch)
    assert (shard_of(a_server), shard_of(a_channel), shard_of(b_server), shard_of(b_channel)) == (
        SHARD_A,
        SHARD_A,
        SHARD_B,
        SHARD_B,
    )

    seen: list[tuple[str, str]] = []
    remove = database.add_query_hook(lambda statement, url: seen.append((statement, url)))
    uow = UnitOfWork(database, InProcessBus())
    try:
        page = await messages.history(uow, ALICE.user_id, a_channel, before=None, after=None, limit=50)
        assert page is not None and [m.content for m in page.rows] == ["3:2", "3:1", "3:0"]
        # Alice asking for Bob's channel: routed by the ID to Bob's shard, and refused there.
        assert (
            await messages.history(uow, ALICE.user_id, b_channel, before=None, after=None, limit=50) is None
        )
    finally:
        remove()
        await uow.close()

    a_location, b_location = database.location(SHARD_A), database.location(SHARD_B)
    assert seen, "no SQL was observed"
    for statement, url in seen:
        touches_a = url == _plain(a_location.url) and (
            a_location.schema is None or a_location.schema in statement
        )
        touches_b = url == _plain(b_location.url) and (
            b_location.schema is None or b_location.schema in statement
        )
        assert touches_a != touches_b, (statement, url)  # each statement is in exactly one tenant's shard
        if a_location.schema:
            assert (b_location.schema in statement) == touches_b and (
                a_location.schema in statement
            ) == touches_a
    assert any(_plain(a_location.url) == url for _, url in seen)

    # A shard session cannot see another shard's rows even when asked for them by ID.
    uow = UnitOfWork(database, InProcessBus())
    try:
        rows = await uow.shard(SHARD_A).scalars(select(MessageRow).where(MessageRow.channel_id == b_channel))
        assert list(rows) == []
        in_b = await uow.shard(SHARD_B).scalars(
            select(MessageRow.content).where(MessageRow.channel_id == b_channel)
        )
        assert sorted(in_b) == ["40:0", "40:1", "40:2"]
        tenants = dict(
            (
                await uow.directory().execute(
                    select(Tenant.id, Tenant.shard).where(Tenant.id.in_([a_server, b_server]))
                )
            ).all()
        )
        assert tenants == {a_server: SHARD_A, b_server: SHARD_B}
    finally:
        await uow.close()


def _plain(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
