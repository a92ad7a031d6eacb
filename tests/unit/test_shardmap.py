from __future__ import annotations

import pytest

from db.shardmap import ShardMap, ShardMapError


def test_postgres_ranges_map_to_schemas_in_physical_databases() -> None:
    spec = "0-31=postgresql+asyncpg://db-a/beep; 32-63=postgresql+asyncpg://db-b/beep"
    shard_map = ShardMap.parse(spec, 64)
    assert shard_map.location(0).url.endswith("db-a/beep") and shard_map.location(0).schema == "shard_00"
    assert shard_map.location(40).url.endswith("db-b/beep") and shard_map.location(40).schema == "shard_40"
    assert len(shard_map.physical_urls()) == 2


def test_sqlite_template_gives_a_file_per_shard() -> None:
    shard_map = ShardMap.parse("0-3=sqlite+aiosqlite:///var/shard_{shard}.db", 4)
    assert shard_map.location(2).url == "sqlite+aiosqlite:///var/shard_02.db"
    assert shard_map.location(2).schema is None


@pytest.mark.parametrize(
    ("spec", "count", "message"),
    [
        ("0-30=postgresql://a/b", 32, "without a database: 31"),
        ("0-31=postgresql://a/b;31=postgresql://c/d", 32, "mapped twice"),
        ("0-40=postgresql://a/b", 32, "exceed"),
        ("0-3=sqlite+aiosqlite:///one.db", 4, "{shard} placeholder"),
        ("zero=postgresql://a/b", 1, "bad shard range"),
        ("0-1", 2, "FIRST-LAST=URL"),
        ("5-2=postgresql://a/b", 8, "bad shard range"),
    ],
)
def test_bad_maps_are_refused_with_a_reason(spec: str, count: int, message: str) -> None:
    with pytest.raises(ShardMapError, match=message.replace("{", r"\{").replace("}", r"\}")):
        ShardMap.parse(spec, count)
