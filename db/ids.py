"""Time-ordered 64-bit IDs that carry their logical shard.

Layout (63 bits, so the value fits a signed BIGINT and sorts by time):

    | 41 bits: ms since 2025-01-01 | 10 bits: logical shard | 12 bits: sequence |

41 bits of milliseconds last until 2094; 10 bits allow up to 1024 logical shards; the sequence gives 4096
IDs per millisecond per shard per process. The sequence starts at a random value in every process so two
processes writing to one shard in the same millisecond collide only by rare chance, and the primary key
turns such a chance into an error rather than a silent overwrite.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime

EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
TIMESTAMP_BITS = 41
SHARD_BITS = 10
SEQUENCE_BITS = 12
MAX_SHARDS = 1 << SHARD_BITS
_SEQUENCE_MASK = (1 << SEQUENCE_BITS) - 1
_SHARD_MASK = MAX_SHARDS - 1
MAX_ID = (1 << (TIMESTAMP_BITS + SHARD_BITS + SEQUENCE_BITS)) - 1


class IdGenerator:
    """Generates IDs for any shard; thread-safe, monotonic per process even if the clock steps back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._sequence = secrets.randbelow(_SEQUENCE_MASK + 1)

    def new_id(self, shard: int) -> int:
        if not 0 <= shard < MAX_SHARDS:
            raise ValueError(f"shard {shard} out of range 0..{MAX_SHARDS - 1}")
        with self._lock:
            now = max(int(time.time() * 1000) - EPOCH_MS, self._last_ms)
            if now == self._last_ms:
                self._sequence = (self._sequence + 1) & _SEQUENCE_MASK
                if self._sequence == 0:  # 4096 IDs in one millisecond: borrow the next one
                    now += 1
            self._last_ms = now
            return (now << (SHARD_BITS + SEQUENCE_BITS)) | (shard << SEQUENCE_BITS) | self._sequence


_generator = IdGenerator()


DIRECTORY_SHARD = 0  # global rows (users, invitations...) live in the directory; their IDs say shard 0


def new_id(shard: int) -> int:
    return _generator.new_id(shard)


def shard_of(entity_id: int) -> int:
    return (entity_id >> SEQUENCE_BITS) & _SHARD_MASK


def created_at(entity_id: int) -> datetime:
    ms = (entity_id >> (SHARD_BITS + SEQUENCE_BITS)) + EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def lowest_id_at(moment: datetime) -> int:
    """The smallest ID that could have been created at `moment` (for time-range queries on IDs)."""
    ms = max(int(moment.timestamp() * 1000) - EPOCH_MS, 0)
    return ms << (SHARD_BITS + SEQUENCE_BITS)


_configured_shards = MAX_SHARDS


def configure_logical_shards(count: int) -> None:
    """Set once per process from settings: an ID naming a shard beyond the configured ones is not ours."""
    global _configured_shards
    if not 1 <= count <= MAX_SHARDS:
        raise ValueError(f"logical shard count must be 1..{MAX_SHARDS}")
    _configured_shards = count


def parse_id(raw: str) -> int | None:
    """An ID as clients send it (a decimal string); None when it is not one of ours."""
    if not raw or len(raw) > 20 or not raw.isascii() or not raw.isdigit():
        return None
    value = int(raw)
    if not 0 < value <= MAX_ID or shard_of(value) >= _configured_shards:
        return None
    return value


def group_by_shard(ids: Iterable[int]) -> dict[int, list[int]]:
    """IDs grouped by the logical shard they live in, so a batch touches each shard once."""
    groups: dict[int, list[int]] = {}
    for entity_id in ids:
        groups.setdefault(shard_of(entity_id), []).append(entity_id)
    return groups
