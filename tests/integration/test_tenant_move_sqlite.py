"""`beep tenants move` on embedded storage (SQLite files), where it runs offline: the copy, the switch, the
relocations across several moves, resuming, aborting and the refusals — in-process, no stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from db.engines import Database
from db.ids import new_id, shard_of
from db.locator import Relocation, TenantMove
from db.migrate import upgrade
from db.shardmap import ShardMap
from db.tenant_move import MoveError, MoveReport, TenantMover
from db.tenant_move.plan import ARRIVING
from db.tenants import Tenant
from subgraphs.channels.models import ChannelRow, OverwriteRow
from subgraphs.messages.models import MessageRow
from subgraphs.servers.models import MemberRoleRow, MemberRow, RoleRow, ServerRow

HOME = 1
SHARD_TABLES = ("servers", "members", "roles", "member_roles", "channels", "channel_overwrites", "messages")


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(
        f"sqlite+aiosqlite:///{tmp_path}/directory.db",
        ShardMap.parse(f"0-3=sqlite+aiosqlite:///{tmp_path}/shard_{{shard}}.db", 4),
    )
    await upgrade(db)
    yield db
    await db.dispose()


async def _tenant(database: Database, shard: int = HOME) -> tuple[int, int, list[int]]:
    """A server with roles, a member, a folder holding a channel created before it, an overwrite and
    messages; returns the server's, the text channel's and the messages' ids."""
    now = datetime.now(UTC)
    server_id = new_id(shard)
    channel_id, folder_id, role_id, user_id = new_id(shard), new_id(shard), new_id(shard), 424242
    messages = [new_id(shard) for _ in range(25)]
    async with database.directory_session() as directory:
        directory.add(Tenant(id=server_id, shard=shard, kind="SERVER"))
        await directory.commit()
    async with database.shard_session(shard) as session:
        session.add(
            ServerRow(id=server_id, name="Guild", visibility="PUBLIC", owner_id=user_id, created_at=now)
        )
        await session.flush()
        session.add_all(
            [
                MemberRow(server_id=server_id, user_id=user_id, joined_at=now),
                RoleRow(id=server_id, server_id=server_id, name="@everyone", permissions=1, position=0),
                RoleRow(id=role_id, server_id=server_id, name="mods", permissions=8, position=1),
                ChannelRow(id=folder_id, server_id=server_id, name="folder", kind="FOLDER", position=0),
            ]
        )
        await session.flush()
        session.add_all(
            [
                MemberRoleRow(server_id=server_id, user_id=user_id, role_id=role_id),
                ChannelRow(
                    id=channel_id, server_id=server_id, name="general", kind="TEXT", parent_id=folder_id
                ),
            ]
        )
        await session.flush()
        session.add(
            OverwriteRow(channel_id=channel_id, target_kind="ROLE", target_id=role_id, allow=1024, deny=0)
        )
        session.add_all(
            MessageRow(id=m, channel_id=channel_id, server_id=server_id, author_id=user_id, content=f"m{i}")
            for i, m in enumerate(messages)
        )
        await session.commit()
    return server_id, channel_id, messages


async def _counts(database: Database, shard: int, server_id: int) -> dict[str, int]:
    async with database.shard_engine(shard).connect() as conn:
        counts = {}
        for table in SHARD_TABLES:
            column = "id" if table == "servers" else "server_id"
            if table == "channel_overwrites":
                where = f"channel_id IN (SELECT id FROM channels WHERE server_id = {server_id})"
            else:
                where = f"{column} = {server_id}"
            counts[table] = (
                await conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {where}"))
            ).scalar()
        return counts  # type: ignore[return-value]


async def _moved_to(database: Database, shard: int, server_id: int) -> int | None:
    async with database.shard_session(shard) as session:
        return await session.scalar(sa.select(ServerRow.moved_to).where(ServerRow.id == server_id))


async def _located(database: Database, ids: list[int]) -> set[int]:
    async with database.directory_session() as directory:
        database.locator.invalidate()
        return set((await database.locator.locate(directory, ids)).values())


async def test_moves_there_and_on_and_back_keep_every_id_routable(database: Database) -> None:
    server_id, channel_id, messages = await _tenant(database)
    other_id, _, _ = await _tenant(database)  # shares the source shard: untouched
    before = await _counts(database, HOME, server_id)
    mover = TenantMover(database, settle_seconds=0)

    report = await mover.move(server_id, 2)
    # Relocated: the messages, the server (its id is also the @everyone role's), a role, two channels.
    assert report.rows["messages"] == 25 and report.relocations == 25 + 4
    assert await _counts(database, 2, server_id) == before
    assert set((await _counts(database, HOME, server_id)).values()) == {0}
    assert await _counts(database, HOME, other_id) == before
    assert await _located(database, [server_id, *messages]) == {2}
    assert await _located(database, [other_id]) == {HOME}

    # A message written after the first move is minted in the new shard; a second move relocates it too.
    async with database.shard_session(2) as session:
        later = new_id(2)
        session.add(
            MessageRow(id=later, channel_id=channel_id, server_id=server_id, author_id=1, content="x")
        )
        await session.commit()
    await mover.move(server_id, 3)
    assert await _located(database, [server_id, *messages, later]) == {3}

    await mover.move(server_id, HOME)  # back home: only the IDs minted elsewhere stay relocated
    assert await _located(database, [server_id, *messages, later]) == {HOME}
    async with database.directory_session() as directory:
        relocated = set(await directory.scalars(sa.select(Relocation.entity_id)))
        tenant = await directory.get(Tenant, server_id)
        journal = sa.select(TenantMove.state).where(TenantMove.tenant_id == server_id).order_by(TenantMove.id)
        states = list(await directory.scalars(journal))
    assert relocated == {later} and shard_of(later) == 2
    assert tenant is not None and tenant.shard == HOME
    assert states == ["DONE", "DONE", "DONE"]
    for shard in (2, 3):
        assert set((await _counts(database, shard, server_id)).values()) == {0}


async def test_an_interrupted_copy_resumes_and_an_abort_cleans_up(database: Database) -> None:
    server_id, _, _ = await _tenant(database)
    mover = TenantMover(database, settle_seconds=0)
    plan = await mover._plan(HOME, 2)
    journal, resumed = await mover._begin(server_id, 2)
    assert not resumed
    await mover._copy(plan, journal)  # ...and the process dies before the switch
    assert await _moved_to(database, 2, server_id) == ARRIVING  # not live: scans over all shards skip it
    with pytest.raises(MoveError, match="unfinished move to shard 2"):
        await mover.move(server_id, 3)

    report = await mover.move(server_id, 2)  # the same command again: resumes
    assert report.resumed and report.caught_up == 0
    assert await _moved_to(database, 2, server_id) is None
    assert set((await _counts(database, HOME, server_id)).values()) == {0}

    journal, _ = await mover._begin(server_id, 3)
    await mover._copy(plan, journal)
    assert (await _counts(database, 3, server_id))["messages"] == 25
    aborted = await mover.abort(server_id)
    assert aborted.state == "FAILED"
    assert set((await _counts(database, 3, server_id)).values()) == {0}
    assert (await _counts(database, 2, server_id))["messages"] == 25
    with pytest.raises(MoveError, match="no unfinished move"):
        await mover.abort(server_id)


async def test_bad_moves_are_refused(database: Database) -> None:
    server_id, _, _ = await _tenant(database)
    mover = TenantMover(database, settle_seconds=0)
    with pytest.raises(MoveError, match="no tenant 12345"):
        await mover.move(12345, 2)
    with pytest.raises(MoveError, match="already on shard 1"):
        await mover.move(server_id, HOME)
    with pytest.raises(MoveError, match="out of range"):
        await mover.move(server_id, 4)


async def test_the_command_moves_embedded_storage_only_offline(database: Database, tmp_path: Path) -> None:
    server_id, _, _ = await _tenant(database)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEEP_")} | {
        "BEEP_DIRECTORY_URL": database.directory_url,
        "BEEP_SHARD_DATABASES": f"0-3=sqlite+aiosqlite:///{tmp_path}/shard_{{shard}}.db",
        "BEEP_LOGICAL_SHARDS": "4",
    }
    command = [sys.executable, "-m", "beep.cli", "tenants", "move", str(server_id), "--to", "2"]
    online = subprocess.run(command, env=env, capture_output=True, text=True)
    assert online.returncode == 2 and "--offline" in online.stderr
    offline = subprocess.run([*command, "--offline"], env=env, capture_output=True, text=True)
    assert offline.returncode == 0, offline.stderr
    report = json.loads(offline.stdout)
    assert (report["from_shard"], report["to_shard"], report["rows"]["messages"]) == (HOME, 2, 25)


async def test_a_move_interrupted_after_the_switch_finishes_when_run_again(database: Database) -> None:
    server_id, _, messages = await _tenant(database)
    mover = TenantMover(database, settle_seconds=0)
    journal, _ = await mover._begin(server_id, 2)
    plan = await mover._plan(HOME, 2)
    await mover._copy(plan, journal)
    await mover._switch(plan, journal, MoveReport(server_id, HOME, 2, resumed=False))  # ...then it dies
    assert await _located(database, [server_id, *messages]) == {2}
    assert await _moved_to(database, HOME, server_id) == 2  # the old copy is fenced
    with pytest.raises(MoveError, match="has switched already"):
        await mover.abort(server_id)

    report = await mover.move(server_id, 2)
    assert report.resumed and report.deleted == sum((await _counts(database, 2, server_id)).values())
    assert set((await _counts(database, HOME, server_id)).values()) == {0}
