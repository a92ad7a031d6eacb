"""Which physical database holds each logical shard.

Configured as `BEEP_SHARD_DATABASES`, a `;`-separated list of `FIRST-LAST=URL` ranges:

    0-31=postgresql+asyncpg://beep@db-a/beep;32-63=postgresql+asyncpg://beep@db-b/beep

On PostgreSQL one physical database holds many logical shards, one schema each (`shard_07`). On SQLite
each logical shard is its own file, so the URL is a template with `{shard}` in it:

    0-63=sqlite+aiosqlite:///var/shards/shard_{shard}.db

Moving logical shards to another database is an operation (copy the schemas, change this setting), not a
rewrite: IDs carry the logical shard, never the physical database.
"""

from __future__ import annotations

from dataclasses import dataclass

from db.ids import MAX_SHARDS


class ShardMapError(ValueError):
    pass


@dataclass(frozen=True)
class ShardLocation:
    shard: int
    url: str  # physical database URL (the template already filled in for SQLite)
    schema: str | None  # the PostgreSQL schema holding the shard; None when the file is the shard

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


def schema_name(shard: int) -> str:
    return f"shard_{shard:02d}"


@dataclass(frozen=True)
class ShardMap:
    logical_shards: int
    locations: tuple[ShardLocation, ...]

    @classmethod
    def parse(cls, spec: str, logical_shards: int) -> ShardMap:
        if not 1 <= logical_shards <= MAX_SHARDS:
            raise ShardMapError(f"logical shard count must be 1..{MAX_SHARDS}, got {logical_shards}")
        by_shard: dict[int, ShardLocation] = {}
        for part in filter(None, (p.strip() for p in spec.split(";"))):
            span, sep, url = part.partition("=")
            if not sep or not url.strip():
                raise ShardMapError(f"expected FIRST-LAST=URL, got {part!r}")
            first, last = _parse_span(span.strip())
            url = url.strip()
            sqlite = url.startswith("sqlite")
            if sqlite and "{shard}" not in url and first != last:
                raise ShardMapError("an SQLite URL for several shards needs a {shard} placeholder")
            for shard in range(first, last + 1):
                if shard in by_shard:
                    raise ShardMapError(f"logical shard {shard} is mapped twice")
                filled = url.replace("{shard}", f"{shard:02d}")
                by_shard[shard] = ShardLocation(shard, filled, None if sqlite else schema_name(shard))
        missing = [s for s in range(logical_shards) if s not in by_shard]
        if missing:
            raise ShardMapError(f"logical shards without a database: {_ranges(missing)}")
        extra = [s for s in by_shard if s >= logical_shards]
        if extra:
            raise ShardMapError(f"shards {_ranges(sorted(extra))} exceed the logical shard count")
        return cls(logical_shards, tuple(by_shard[s] for s in range(logical_shards)))

    def location(self, shard: int) -> ShardLocation:
        if not 0 <= shard < self.logical_shards:
            raise ShardMapError(f"unknown logical shard {shard}")
        return self.locations[shard]

    def physical_urls(self) -> list[str]:
        return sorted({loc.url for loc in self.locations})


def _parse_span(span: str) -> tuple[int, int]:
    first_s, _, last_s = span.partition("-")
    try:
        first = int(first_s)
        last = int(last_s) if last_s else first
    except ValueError:
        raise ShardMapError(f"bad shard range {span!r}") from None
    if first < 0 or last < first:
        raise ShardMapError(f"bad shard range {span!r}")
    return first, last


def _ranges(shards: list[int]) -> str:
    out: list[str] = []
    start = prev = shards[0]
    for s in [*shards[1:], None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if s is not None:
            start = prev = s
    return ", ".join(out)
