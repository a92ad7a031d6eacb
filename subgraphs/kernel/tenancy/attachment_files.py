"""The life of attachment files beside their rows: purge jobs, and whether a stored file is still live.

Files cannot join a database transaction, so deleting a message, a channel or a server deletes its files
through a **purge job** (the directory's `media_purges`):

1. The deleting transaction records a job (what to purge: some keys, a channel's scope or a server's)
   in the directory, which commits before the shards (kernel/tenancy/uow.py).
2. Right after the commit the resolver runs the job: it checks that the rows are really gone (the
   attachments no longer name the keys, the channel or server row no longer exists), deletes the files,
   then the job. A rolled-back deletion leaves a job whose rows still exist: it is dropped, files kept.
3. A sweeper in every messages process (`sweep`, every 30 s) runs the jobs older than 30 s that a crash
   or a storage outage left behind, retrying until the files are gone. So files outlive their rows by
   milliseconds normally, and by the sweep interval after a crash.

And a file is **never served after its row is gone**: the media app asks `attachment_is_live` before every
download of a key in an attachment scope (`t<server>/c<channel>/...`): one indexed query in the
tenant's shard, so a signed URL stops working the moment the deletion commits, whether or not the file
is gone yet.

This module is a kernel one because channel and server deletions (channels and servers subgraphs) need
it and subgraphs do not import each other; like kernel/tenancy/access.py it reads other contexts' tables
(attachments, channels, servers) through the shared light table references of kernel/tenancy/tenant_tables.py,
within the tenant's shard only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import BigInteger, Integer, String, Text, func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import DirectoryBase, UtcDateTime
from db.engines import Database
from media.attachments import Attachments, attachment_scope, channel_scope_prefix
from subgraphs.kernel.tenancy import tenant_tables
from subgraphs.kernel.tenancy.uow import UnitOfWork

log = logging.getLogger("beep.attachment_files")

SWEEP_SECONDS = 30.0  # how often each messages process looks for jobs left behind
GRACE = timedelta(seconds=30)  # a job younger than this belongs to a request still running it
GIVE_UP = timedelta(hours=1)  # rows still there after this long: that deletion never committed
PENDING_UPLOAD_TTL = timedelta(hours=1)  # an upload not attached to a message by then is deleted

_ATTACHMENT_KEY = re.compile(r"t(?P<server>[0-9]{1,20})/c(?P<channel>[0-9]{1,20})/[0-9a-f]{32}")


class MediaPurgeRow(DirectoryBase):
    """Files to delete once their rows are confirmed gone (see the module's docstring)."""

    __tablename__ = "media_purges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # KEYS | CHANNEL | SERVER
    server_id: Mapped[int] = mapped_column(BigInteger)
    channel_id: Mapped[int | None] = mapped_column(BigInteger)
    keys: Mapped[str | None] = mapped_column(Text)  # JSON list of storage keys, for KEYS
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now(), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


# The shared light references (kernel/tenancy/tenant_tables.py), named as this module always has.
_servers = tenant_tables.servers
_channels = tenant_tables.channels
_attachments = tenant_tables.attachments


# --- recording jobs (inside the deleting transaction) -------------------------------------------------


async def purge_keys_later(uow: UnitOfWork, server_id: int, keys: Iterable[str | None]) -> int | None:
    wanted = sorted({k for k in keys if k})
    if not wanted:
        return None
    return await _record(uow, MediaPurgeRow(kind="KEYS", server_id=server_id, keys=json.dumps(wanted)))


async def purge_channels_later(uow: UnitOfWork, server_id: int, channel_ids: Iterable[int]) -> list[int]:
    return [
        await _record(uow, MediaPurgeRow(kind="CHANNEL", server_id=server_id, channel_id=channel_id))
        for channel_id in sorted(set(channel_ids))
    ]


async def purge_server_later(uow: UnitOfWork, server_id: int) -> int:
    return await _record(uow, MediaPurgeRow(kind="SERVER", server_id=server_id))


async def _record(uow: UnitOfWork, row: MediaPurgeRow) -> int:
    row.created_at = datetime.now(UTC)
    row.attempts = 0
    directory = uow.directory()
    directory.add(row)
    await directory.flush()
    return row.id


# --- running jobs (after the commit, and from the sweeper) --------------------------------------------


async def run_jobs(database: Database, files: Attachments, job_ids: Sequence[int | None]) -> None:
    """Run these jobs now (the deletion that recorded them has committed). Failures are left to the
    sweeper: this never raises into the request that committed."""
    ids = [i for i in job_ids if i is not None]
    if not ids:
        return
    try:
        async with database.directory_session() as directory:
            jobs = list(await directory.scalars(sa.select(MediaPurgeRow).where(MediaPurgeRow.id.in_(ids))))
            for job in jobs:
                await _run(database, directory, files, job)
            await directory.commit()
    except Exception:
        log.warning("purging attachment files failed; the sweeper retries", exc_info=True)


async def sweep(
    database: Database, files: Attachments, *, limit: int = 100, expire_uploads: bool = True
) -> int:
    """Run jobs left behind (older than GRACE) and delete uploads never attached; how many jobs ran."""
    cutoff = datetime.now(UTC) - GRACE
    async with database.directory_session() as directory:
        jobs = list(
            await directory.scalars(
                sa.select(MediaPurgeRow)
                .where(MediaPurgeRow.created_at < cutoff)
                .order_by(MediaPurgeRow.id)
                .limit(limit)
            )
        )
        for job in jobs:
            await _run(database, directory, files, job)
        await directory.commit()
    if expire_uploads:
        await _expire_pending_uploads(database, files)
    return len(jobs)


async def sweeper(database: Database, files: Attachments, interval: float = SWEEP_SECONDS) -> None:
    """The background task of the messages process: jobs every round, expired uploads every tenth
    (a query per logical shard)."""
    rounds = 0
    while True:
        await asyncio.sleep(interval)
        rounds += 1
        try:
            await sweep(database, files, expire_uploads=rounds % 10 == 1)
        except Exception:
            log.warning("the attachment sweeper failed a round", exc_info=True)


async def _run(database: Database, directory: AsyncSession, files: Attachments, job: MediaPurgeRow) -> None:
    shard = (await database.locator.locate(directory, [job.server_id]))[job.server_id]
    async with database.shard_session(shard) as session:
        gone = await _rows_gone(session, job)
    if gone:
        done = await _delete_files(files, job)
        if done:
            await directory.delete(job)
            return
    elif datetime.now(UTC) - job.created_at > GIVE_UP:
        log.info("dropping a purge job whose rows still exist", extra={"job": job.id})
        await directory.delete(job)
        return
    job.attempts += 1


async def _rows_gone(session: AsyncSession, job: MediaPurgeRow) -> bool:
    if job.kind == "SERVER":
        found = await session.scalar(sa.select(_servers.c.id).where(_servers.c.id == job.server_id))
        return found is None
    if job.kind == "CHANNEL":
        found = await session.scalar(sa.select(_channels.c.id).where(_channels.c.id == job.channel_id))
        return found is None
    keys = json.loads(job.keys or "[]")
    if not keys:
        return True
    still = await session.scalar(
        sa.select(func.count())
        .select_from(_attachments)
        .where(sa.or_(_attachments.c.storage_key.in_(keys), _attachments.c.thumbnail_key.in_(keys)))
    )
    return not still


async def _delete_files(files: Attachments, job: MediaPurgeRow) -> bool:
    try:
        if job.kind == "SERVER":
            await files.storage.delete_scope(channel_scope_prefix(job.server_id))
            return True
        if job.kind == "CHANNEL":
            assert job.channel_id is not None
            await files.storage.delete_scope(attachment_scope(job.server_id, job.channel_id))
            return True
    except Exception:
        log.warning("deleting a scope failed; retried later", exc_info=True, extra={"job": job.id})
        return False
    return await files.delete(*json.loads(job.keys or "[]"))


async def _expire_pending_uploads(database: Database, files: Attachments) -> None:
    """Uploads never attached to a message within PENDING_UPLOAD_TTL: rows first, then files."""
    cutoff = datetime.now(UTC) - PENDING_UPLOAD_TTL
    for shard in range(database.shard_map.logical_shards):
        async with database.shard_session(shard) as session:
            rows = (
                await session.execute(
                    sa.delete(_attachments)
                    .where(_attachments.c.message_id.is_(None), _attachments.c.created_at < cutoff)
                    .returning(_attachments.c.storage_key, _attachments.c.thumbnail_key)
                )
            ).all()
            await session.commit()
        if rows:
            await files.delete(*(key for row in rows for key in row))


# --- serving ------------------------------------------------------------------------------------------


async def attachment_is_live(database: Database, key: str) -> bool:
    """Whether a key may be served: True for keys outside attachment scopes (pictures have their own
    lifecycle); for an attachment's file or thumbnail, whether a row still names it."""
    match = _ATTACHMENT_KEY.fullmatch(key)
    if match is None:
        return True
    server_id = int(match["server"])
    async with database.directory_session() as directory:
        shard = (await database.locator.locate(directory, [server_id]))[server_id]
    async with database.shard_session(shard) as session:
        found = await session.scalar(
            sa.select(_attachments.c.id)
            .where(
                _attachments.c.server_id == server_id,
                sa.or_(_attachments.c.storage_key == key, _attachments.c.thumbnail_key == key),
            )
            .limit(1)
        )
    return found is not None
