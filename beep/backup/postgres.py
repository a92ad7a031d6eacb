"""PostgreSQL's side of a backup: every physical database dumped at one common point, and restored.

One point across databases: Beep commits to several physical databases (the directory and the shard
databases) in separate transactions, so dumps taken one after another would each be consistent on
their own but not with each other. `fenced_snapshots` closes that gap for a moment: it takes a SHARE
lock on every table of every database (writers wait; readers do not), and while all of them are held it
opens a REPEATABLE READ transaction in each database and exports its snapshot. Then the locks go: the
pause writers see is the time to take the locks and export the snapshots (tens of milliseconds, reported
as `fence_ms`). `pg_dump --snapshot` then dumps each database exactly as of that point while Beep carries
on. A writer holding a lock in one database while waiting in another could wait on the fence forever, so
the fence takes its locks with a short `lock_timeout`, and on a timeout lets everything go and tries again.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from beep.backup.sealed import BackupError

_USER_TABLES = """
    SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
    WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND schemaname NOT LIKE 'pg\\_%'
    ORDER BY 1
"""


@dataclass(frozen=True)
class Libpq:
    """A SQLAlchemy URL as libpq and asyncpg take it; the password travels in PGPASSWORD, not in argv."""

    url: str  # postgresql://user@host:port/db?… without the password
    password: str | None

    @classmethod
    def from_sqlalchemy(cls, url: str) -> Libpq:
        parts = urlsplit(url)
        scheme = parts.scheme.split("+", 1)[0]
        if scheme not in ("postgresql", "postgres"):
            raise BackupError("UNSUPPORTED_DATABASE", f"not a PostgreSQL URL: {scheme}://…")
        netloc, password = parts.netloc, None
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user, sep, password = userinfo.partition(":")
            netloc = f"{user}@{host}"
            password = password if sep else None
        return cls(urlunsplit(("postgresql", netloc, parts.path, parts.query, "")), password)

    @property
    def database(self) -> str:
        return urlsplit(self.url).path.lstrip("/")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.url, password=self.password)


def tool(name: str) -> str:
    """The newest installed pg_dump/pg_restore: it must be at least the server's major version."""
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_major, reverse=True)
    found = candidates[0] if candidates else shutil.which(name)
    if not found:
        raise BackupError("MISSING_TOOL", f"{name} not found: install PostgreSQL's client programs")
    return found


def _major(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except (ValueError, IndexError):
        return 0


@dataclass
class Snapshot:
    database: Libpq
    snapshot_id: str
    holder: asyncpg.Connection  # keeps the exported snapshot alive until the dump has read it


@asynccontextmanager
async def fenced_snapshots(
    databases: list[Libpq], *, lock_timeout_ms: int = 2000, attempts: int = 10
) -> AsyncIterator[tuple[list[Snapshot], float]]:
    """Snapshots of every database as of one instant (see the module's docstring), and the pause in ms."""
    holders = [await db.connect() for db in databases]
    lockers = [await db.connect() for db in databases]
    try:
        for attempt in range(attempts):
            started = time.perf_counter()
            try:
                for locker in lockers:
                    await locker.execute("BEGIN")
                    await locker.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
                    tables = [row[0] for row in await locker.fetch(_USER_TABLES)]
                    if tables:
                        await locker.execute(f"LOCK TABLE {', '.join(tables)} IN SHARE MODE")
                ids = []
                for holder in holders:
                    await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    ids.append(await holder.fetchval("SELECT pg_export_snapshot()"))
            except asyncpg.LockNotAvailableError:
                for connection in (*lockers, *holders):
                    if connection.is_in_transaction():
                        await connection.execute("ROLLBACK")
                await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
                continue
            for locker in lockers:
                await locker.execute("COMMIT")  # writers go on from here
            pause_ms = (time.perf_counter() - started) * 1000
            yield [Snapshot(db, sid, h) for db, sid, h in zip(databases, ids, holders, strict=True)], pause_ms
            return
        raise BackupError(
            "BUSY", f"could not lock every table within {attempts} tries: writers kept them busy"
        )
    finally:
        for connection in (*lockers, *holders):
            await connection.close()


async def dump(snapshot: Snapshot) -> AsyncIterator[bytes]:
    """`pg_dump --format=custom` of one database as of its snapshot, as a stream of bytes."""
    process = await asyncio.create_subprocess_exec(
        tool("pg_dump"),
        "--format=custom",
        "--no-owner",
        "--no-privileges",
        f"--snapshot={snapshot.snapshot_id}",
        f"--dbname={snapshot.database.url}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=snapshot.database.env(),
    )
    assert process.stdout is not None and process.stderr is not None
    errors = asyncio.ensure_future(process.stderr.read())
    try:
        while chunk := await process.stdout.read(1 << 20):
            yield chunk
    finally:
        if process.returncode is None and not process.stdout.at_eof():
            process.kill()
        code = await process.wait()
        message = (await errors).decode(errors="replace").strip()
    if code != 0:
        raise BackupError("DUMP_FAILED", f"pg_dump of {snapshot.database.database} failed: {message[-500:]}")


async def table_count(database: Libpq) -> int:
    connection = await database.connect()
    try:
        return len(await connection.fetch(_USER_TABLES))
    finally:
        await connection.close()


async def restore(database: Libpq, chunks: AsyncIterator[bytes]) -> None:
    """Feed a dump to `pg_restore` into an empty database, in one transaction (all or nothing)."""
    if (tables := await table_count(database)) > 0:
        raise BackupError(
            "TARGET_NOT_EMPTY",
            f"database {database.database} already holds {tables} tables: restore wants empty databases",
        )
    process = await asyncio.create_subprocess_exec(
        tool("pg_restore"),
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        f"--dbname={database.url}",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=database.env(),
    )
    assert process.stdin is not None and process.stderr is not None
    errors = asyncio.ensure_future(process.stderr.read())
    try:
        async for chunk in chunks:
            process.stdin.write(chunk)
            await process.stdin.drain()
        process.stdin.close()
    except BaseException:
        process.kill()
        await process.wait()
        raise
    code = await process.wait()
    if code != 0:
        message = (await errors).decode(errors="replace").strip()
        raise BackupError("RESTORE_FAILED", f"pg_restore into {database.database} failed: {message[-500:]}")
