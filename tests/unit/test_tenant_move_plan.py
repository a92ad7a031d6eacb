"""The tenant mover's planning rules: every shard table is covered, parents are copied first, and bad
arguments are refused with a reason."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from db.base import ShardBase
from db.engines import Database
from db.migrate import upgrade
from db.shardmap import ShardMap
from db.tenant_move import MoveError, MovePlan, check_target, plan_tables
from db.tenant_move.plan import IGNORED_TABLES, parents_first_rows


@pytest.fixture(scope="module")
async def migrated_shard(tmp_path_factory: pytest.TempPathFactory) -> sa.MetaData:
    """The tables the shard migrations really create (what a move must cover), reflected."""
    root: Path = tmp_path_factory.mktemp("plan")
    database = Database(
        f"sqlite+aiosqlite:///{root}/directory.db",
        ShardMap.parse(f"0=sqlite+aiosqlite:///{root}/shard_{{shard}}.db", 1),
    )
    try:
        await upgrade(database)
        metadata = sa.MetaData()
        async with database.shard_engine(0).connect() as conn:
            await conn.run_sync(lambda sync_conn: metadata.reflect(sync_conn))
        return metadata
    finally:
        await database.dispose()


def _shard_models() -> sa.MetaData:
    for models in sorted(Path("subgraphs").glob("*/models.py")):
        importlib.import_module(f"subgraphs.{models.parent.name}.models")
    return ShardBase.metadata


async def test_every_migrated_shard_table_is_planned(migrated_shard: sa.MetaData) -> None:
    plan = plan_tables(migrated_shard)  # raises for a table the mover cannot attribute to a tenant
    migrated = {t.name for t in migrated_shard.tables.values()} - IGNORED_TABLES
    assert set(plan.names) == migrated
    assert "outbox" in IGNORED_TABLES  # the shard's event log is not a tenant's: it stays and is relayed
    assert {
        "servers",
        "members",
        "roles",
        "member_roles",
        "channels",
        "channel_overwrites",
        "messages",
    } <= migrated


async def test_every_model_table_exists_in_the_migrations_and_is_planned(migrated_shard: sa.MetaData) -> None:
    planned = set(plan_tables(migrated_shard).names)
    modelled = {t.name for t in _shard_models().tables.values()} - IGNORED_TABLES
    assert IGNORED_TABLES - {"alembic_version"} <= {t.name for t in migrated_shard.tables.values()}
    assert modelled <= planned, f"shard models without a migrated, movable table: {modelled - planned}"
    plan_tables(_shard_models())  # the models alone plan too (same rules)


def _position(plan: MovePlan) -> dict[str, int]:
    return {name: i for i, name in enumerate(plan.names)}


async def test_parents_are_copied_before_children(migrated_shard: sa.MetaData) -> None:
    plan = plan_tables(migrated_shard)
    at = _position(plan)
    assert plan.names[0] == "servers"
    for parent, child in [
        ("servers", "members"),
        ("servers", "roles"),
        ("members", "member_roles"),
        ("roles", "member_roles"),
        ("servers", "channels"),
        ("channels", "messages"),
        ("channels", "channel_overwrites"),
        ("channels", "webhooks"),
    ]:
        assert at[parent] < at[child], (parent, child, plan.names)
    assert plan_tables(migrated_shard).names == plan.names  # deterministic


async def test_scopes_self_references_and_relocatable_tables(migrated_shard: sa.MetaData) -> None:
    plan = plan_tables(migrated_shard)
    assert plan.table("servers").scope == "tenant"
    assert plan.table("messages").scope == "channel_id"  # found by index through the channels
    assert plan.table("webhooks").scope == "server_id"
    assert plan.table("members").scope == "server_id"
    assert plan.table("channel_overwrites").scope == "channel_id"
    assert plan.table("channels").parent_columns == (("parent_id", "id"),)
    assert plan.table("servers").reset == {"moved_to"}
    relocatable = {t.name for t in plan.tables if t.relocatable}
    assert {"servers", "channels", "messages", "roles", "webhooks"} <= relocatable
    assert not relocatable & {"members", "member_roles", "channel_overwrites", "bans"}


def test_a_table_without_a_tenant_column_is_refused() -> None:
    metadata = sa.MetaData()
    sa.Table("servers", metadata, sa.Column("id", sa.BigInteger, primary_key=True))
    sa.Table("reactions", metadata, sa.Column("message_id", sa.BigInteger, primary_key=True))
    with pytest.raises(MoveError, match="'reactions' has neither a server_id nor a channel_id"):
        plan_tables(metadata)


def test_a_table_without_a_primary_key_is_refused() -> None:
    metadata = sa.MetaData()
    sa.Table("servers", metadata, sa.Column("id", sa.BigInteger, primary_key=True))
    sa.Table("notes", metadata, sa.Column("server_id", sa.BigInteger))
    with pytest.raises(MoveError, match="no primary key"):
        plan_tables(metadata)


def test_a_foreign_key_cycle_is_refused() -> None:
    metadata = sa.MetaData()
    sa.Table("servers", metadata, sa.Column("id", sa.BigInteger, primary_key=True))
    for name, other in (("a", "b"), ("b", "a")):
        sa.Table(
            name,
            metadata,
            sa.Column("id", sa.BigInteger, primary_key=True),
            sa.Column("server_id", sa.BigInteger),
            sa.Column(f"{other}_id", sa.BigInteger, sa.ForeignKey(f"{other}.id")),
        )
    with pytest.raises(MoveError, match="cycle"):
        plan_tables(metadata)


def test_rows_of_a_self_referencing_table_come_parents_first() -> None:
    rows: list[dict[str, object]] = [
        {"id": 1, "parent_id": 3},  # a channel moved into a folder created after it
        {"id": 2, "parent_id": None},
        {"id": 3, "parent_id": None},
        {"id": 4, "parent_id": 9},  # its folder is already in the target
    ]
    ordered = parents_first_rows(rows, (("parent_id", "id"),), present={9})
    ids = [row["id"] for row in ordered]
    assert ids.index(3) < ids.index(1)
    assert sorted(ids) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("current", "target", "message"),
    [
        (3, 3, "already on shard 3"),
        (3, 64, "out of range"),
        (3, -1, "out of range"),
    ],
)
def test_bad_targets_are_refused_with_a_reason(current: int, target: int, message: str) -> None:
    with pytest.raises(MoveError, match=message):
        check_target(current, target, 64)


def test_a_good_target_passes() -> None:
    check_target(3, 40, 64)
