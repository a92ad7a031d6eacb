from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from db.ids import MAX_ID, IdGenerator, created_at, group_by_shard, lowest_id_at, parse_id, shard_of


def test_ids_carry_their_shard_and_time() -> None:
    generator = IdGenerator()
    before = datetime.now(UTC) - timedelta(milliseconds=5)
    for shard in (0, 1, 63, 1023):
        entity_id = generator.new_id(shard)
        assert shard_of(entity_id) == shard
        assert before <= created_at(entity_id) <= datetime.now(UTC) + timedelta(milliseconds=5)
        assert 0 < entity_id <= MAX_ID < 2**63  # fits a signed BIGINT


def test_ids_are_unique_and_increasing_per_shard() -> None:
    generator = IdGenerator()
    ids = [generator.new_id(7) for _ in range(20_000)]  # several milliseconds' worth of sequence wrap
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_shard_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        IdGenerator().new_id(1024)


def test_lowest_id_at_orders_with_created_ids() -> None:
    moment = datetime.now(UTC)
    assert lowest_id_at(moment - timedelta(seconds=1)) < IdGenerator().new_id(5)


@pytest.mark.parametrize("raw", ["", "0", "-1", "abc", "1.5", " 12", "1" * 21, "١٢", str(MAX_ID + 1)])
def test_parse_id_rejects_what_is_not_an_id(raw: str) -> None:
    assert parse_id(raw) is None


def test_parse_id_accepts_ids() -> None:
    entity_id = IdGenerator().new_id(3)
    assert parse_id(str(entity_id)) == entity_id


def test_group_by_shard() -> None:
    generator = IdGenerator()
    a, b, c = generator.new_id(1), generator.new_id(2), generator.new_id(1)
    assert group_by_shard([a, b, c]) == {1: [a, c], 2: [b]}
