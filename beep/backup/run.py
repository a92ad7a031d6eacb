"""`beep backup create | verify | restore`: what runs, in which order, and the JSON summary it prints.

create: every physical database (the directory and each shard database) at one common point, plus the
media store's manifest, sealed into one file (`beep.backup.sealed`) at a local directory or an S3 prefix,
then older backups beyond `--keep` pruned. verify: a full read (every frame authenticated, every entry's
hash checked, every PostgreSQL dump listed by `pg_restore --list`, every SQLite copy integrity-checked).
restore: a verify pass first (a damaged backup restores nothing), then each database into the empty
database configured for the same role and logical shards, then the media store checked against the
manifest.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beep.backup import media_manifest, postgres, sqlite
from beep.backup.destinations import open_destination, open_source, prune
from beep.backup.sealed import BackupError, SealedReader, SealedWriter
from subgraphs.kernel.settings import Settings

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PhysicalDatabase:
    role: str  # "directory" or "shards"
    url: str
    shards: tuple[int, ...]  # the logical shards it holds (none for the directory)

    @property
    def engine(self) -> str:
        return "sqlite" if self.url.startswith("sqlite") else "postgresql"

    @property
    def label(self) -> str:
        return "directory" if self.role == "directory" else f"shards {_ranges(self.shards)}"


def physical_databases(settings: Settings) -> list[PhysicalDatabase]:
    by_url: dict[str, list[int]] = defaultdict(list)
    for location in settings.shard_map.locations:
        by_url[location.url].append(location.shard)
    shard_dbs = sorted(
        (PhysicalDatabase("shards", url, tuple(sorted(s))) for url, s in by_url.items()),
        key=lambda d: d.shards,
    )
    return [PhysicalDatabase("directory", settings.resolved_directory_url, ()), *shard_dbs]


def _ranges(shards: tuple[int, ...]) -> str:
    spans: list[str] = []
    for shard in shards:
        if spans and int(spans[-1].split("-")[-1]) == shard - 1:
            spans[-1] = f"{spans[-1].split('-')[0]}-{shard}"
        else:
            spans.append(str(shard))
    return ",".join(spans)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


async def create(
    settings: Settings, location: str, key: bytes, keep: int, progress: Progress
) -> dict[str, Any]:
    started = time.monotonic()
    databases = physical_databases(settings)
    engines = {db.engine for db in databases}
    if len(engines) != 1:
        raise BackupError(
            "UNSUPPORTED_DATABASE", "the directory and the shards must all be PostgreSQL or all SQLite"
        )
    async with open_destination(location, settings) as destination:
        writer = SealedWriter(key, destination.write)
        await writer.start()
        if engines == {"postgresql"}:
            libpqs = [postgres.Libpq.from_sqlalchemy(db.url) for db in databases]
            async with postgres.fenced_snapshots(libpqs) as (snapshots, fence_ms):
                progress(f"fenced {len(snapshots)} databases at one point (writers paused {fence_ms:.0f} ms)")
                for db, snapshot in zip(databases, snapshots, strict=True):
                    await _entry(writer, db, snapshot.database.database, postgres.dump(snapshot), progress)
        else:
            paths = [sqlite.path_of(db.url) for db in databases]
            with sqlite.fenced_copies(paths) as (copies, fence_ms):
                progress(
                    f"copied {len(copies)} database files at one point (writers paused {fence_ms:.0f} ms)"
                )
                for db, copy, path in zip(databases, copies, paths, strict=True):
                    await _entry(writer, db, path.name, _read_file(copy), progress)
        media = await _media_entry(writer, settings)
        progress(f"media manifest: {media['objects']} objects, {_mib(media['bytes'])}")
        summary = {
            "format": 1,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "engine": engines.pop(),
            "fence_ms": round(fence_ms, 1),
            "media": media,
        }
        await writer.finish(summary)
    pruned = await prune(location, settings, keep) if keep else []
    for gone in pruned:
        progress(f"pruned {gone} (keeping the newest {keep})")
    return {
        "location": destination.location,
        "bytes": writer.bytes_written,
        "seconds": round(time.monotonic() - started, 2),
        **summary,
        "databases": [
            {k: e[k] for k in ("name", "role", "shards", "size", "sha256")}
            for e in writer.entries
            if e.get("kind") == "database"
        ],
        "pruned": pruned,
    }


async def _entry(
    writer: SealedWriter, db: PhysicalDatabase, name: str, chunks: AsyncIterator[bytes], progress: Progress
) -> None:
    await writer.begin(
        f"db/{name}", {"kind": "database", "engine": db.engine, "role": db.role, "shards": list(db.shards)}
    )
    size = 0
    async for chunk in chunks:
        await writer.write(chunk)
        size += len(chunk)
    await writer.end({"kind": "database", "role": db.role, "shards": list(db.shards)})
    progress(f"{db.label}: {name}, {_mib(size)}")


async def _media_entry(writer: SealedWriter, settings: Settings) -> dict[str, Any]:
    await writer.begin("media-manifest.jsonl", {"kind": "media-manifest", "backend": settings.media_storage})
    count = total = 0
    async for item in media_manifest.objects(settings):
        await writer.write(json.dumps(item, sort_keys=True).encode() + b"\n")
        count, total = count + 1, total + item["size"]
    await writer.end({"kind": "media-manifest"})
    return {"backend": settings.media_storage, "objects": count, "bytes": total}


async def _read_file(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            yield chunk


async def verify(settings: Settings, location: str, key: bytes, progress: Progress) -> dict[str, Any]:
    started = time.monotonic()
    checked: list[dict[str, Any]] = []
    async with open_source(location, settings) as source:
        reader = SealedReader(key, source)
        await reader.open()
        async for entry, chunks in reader.entries():
            kind = entry.description.get("kind")
            if kind == "database" and entry.description.get("engine") == "postgresql":
                size = await _pg_list(chunks)
            elif kind == "database":
                size = await _sqlite_check(chunks)
            else:
                size = 0
                async for chunk in chunks:
                    size += len(chunk)
            checked.append({"name": entry.name, "kind": kind, "size": size})
            progress(f"verified {entry.name} ({_mib(size)})")
    assert reader.summary is not None
    return {
        "location": location,
        "ok": True,
        "created_at": reader.summary.get("created_at"),
        "bytes": reader.bytes_read,
        "entries": checked,
        "seconds": round(time.monotonic() - started, 2),
    }


async def _pg_list(chunks: AsyncIterator[bytes]) -> int:
    """The dump must be one pg_restore can read: its table of contents is listed from the stream."""
    process = await asyncio.create_subprocess_exec(
        postgres.tool("pg_restore"),
        "--list",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stderr is not None
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            process.stdin.write(chunk)
            await process.stdin.drain()
        process.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass
    except BaseException:
        process.kill()
        await process.wait()
        raise
    stderr = await process.stderr.read()
    if await process.wait() != 0:
        raise BackupError(
            "CORRUPT", f"pg_restore cannot read a dump: {stderr.decode(errors='replace')[-300:]}"
        )
    return size


async def _sqlite_check(chunks: AsyncIterator[bytes]) -> int:
    with tempfile.TemporaryDirectory(prefix="beep-verify-") as scratch:
        path = Path(scratch) / "copy.db"
        size = await _write_file(path, chunks)
        connection = sqlite3.connect(path)
        try:
            result = connection.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            connection.close()
        if result != "ok":
            raise BackupError("CORRUPT", f"a SQLite copy fails its integrity check: {result}")
        return size


async def _write_file(path: Path, chunks: AsyncIterator[bytes]) -> int:
    size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        async for chunk in chunks:
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return size


async def restore(
    settings: Settings, location: str, key: bytes, progress: Progress, *, verify_first: bool = True
) -> dict[str, Any]:
    started = time.monotonic()
    if verify_first:
        await verify(settings, location, key, progress)
    targets = physical_databases(settings)
    restored: list[dict[str, Any]] = []
    expected_media: dict[str, int] = {}
    async with open_source(location, settings) as source:
        reader = SealedReader(key, source)
        await reader.open()
        async for entry, chunks in reader.entries():
            description = entry.description
            if description.get("kind") == "media-manifest":
                async for line in _lines(chunks):
                    item = json.loads(line)
                    expected_media[item["key"]] = item["size"]
                continue
            target = _target(targets, description)
            if description.get("engine") != target.engine:
                raise BackupError(
                    "LAYOUT_MISMATCH",
                    f"{entry.name} is a {description.get('engine')} dump, "
                    f"the configured {target.label} database is {target.engine}",
                )
            if target.engine == "postgresql":
                await postgres.restore(postgres.Libpq.from_sqlalchemy(target.url), chunks)
            else:
                path = sqlite.path_of(target.url)
                sqlite.check_empty(path)
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_name(path.name + ".restoring")
                partial.unlink(missing_ok=True)
                await _write_file(partial, chunks)
                os.rename(partial, path)
            restored.append({"name": entry.name, "role": target.role, "shards": list(target.shards)})
            progress(f"restored {entry.name} into the {target.label} database")
    present = {item["key"] async for item in media_manifest.objects(settings)}
    missing = sorted(set(expected_media) - present)
    if missing:
        progress(f"warning: {len(missing)} media objects named by the backup are not in the media store")
    return {
        "location": location,
        "restored": restored,
        "media": {"expected": len(expected_media), "missing": len(missing), "missing_keys": missing[:20]},
        "seconds": round(time.monotonic() - started, 2),
    }


def _target(targets: list[PhysicalDatabase], description: dict[str, Any]) -> PhysicalDatabase:
    role, shards = description.get("role"), tuple(description.get("shards") or ())
    for target in targets:
        if target.role == role and target.shards == shards:
            return target
    layout = "; ".join(t.label for t in targets)
    raise BackupError(
        "LAYOUT_MISMATCH",
        f"the backup holds a {role} database for shards {_ranges(shards) or '-'}, but this deployment's "
        f"databases are: {layout} (set BEEP_SHARD_DATABASES to the backup's layout)",
    )


async def _lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line:
                yield line
    if pending:
        yield pending


def stderr_progress(line: str) -> None:
    print(f"beep backup: {line}", file=sys.stderr, flush=True)
