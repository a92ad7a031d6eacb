"""The purge jobs' recovery paths, which a normal request never takes: a process that died between the
commit and the files' deletion, a deletion that rolled back, and uploads never attached. The stack's own
databases and storage are driven with the sweeper's code (kernel/tenancy/attachment_files.py), as the messages
process's background task runs it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from db.engines import Database
from media.attachments import Attachments
from subgraphs.kernel.settings import Settings
from subgraphs.kernel.tenancy import attachment_files
from subgraphs.kernel.tenancy.attachment_files import MediaPurgeRow
from subgraphs.kernel.web.runtime import create_storage
from subgraphs.messages.models import AttachmentRow, MessageRow
from tests.harness.stack import Stack
from tests.integration.attachment_flows import community, get, key_of, send_files, upload_first


@pytest.fixture
async def backend(stack: Stack) -> AsyncIterator[tuple[Database, Attachments]]:
    """The stack's databases and file storage, opened with its own settings."""
    values = {k[5:].lower(): v for k, v in stack.env.items() if k.startswith("BEEP_")}
    settings = Settings(**values)
    database = Database(settings.resolved_directory_url, settings.shard_map)
    storage = create_storage(settings)
    files = Attachments(
        storage, _unused_signer(), url_ttl_seconds=60, max_bytes=settings.attachment_max_bytes
    )
    yield database, files
    close = getattr(storage, "close", None)
    if close is not None:
        await close()
    await database.dispose()


def _unused_signer():  # type: ignore[no-untyped-def]
    from media.signing import UrlSigner

    return UrlSigner({"k": b"x" * 32}, "k")


async def _record_job(database: Database, job: MediaPurgeRow, age: timedelta) -> int:
    async with database.directory_session() as directory:
        job.created_at = datetime.now(UTC) - age
        job.attempts = 0
        directory.add(job)
        await directory.commit()
        return job.id


async def _job_exists(database: Database, job_id: int) -> bool:
    async with database.directory_session() as directory:
        return await directory.get(MediaPurgeRow, job_id) is not None


async def _shard_of(database: Database, entity_id: int) -> int:
    async with database.directory_session() as directory:
        return (await database.locator.locate(directory, [entity_id]))[entity_id]


async def test_a_crash_after_the_commit_is_caught_up_by_the_sweeper(
    stack: Stack, backend: tuple[Database, Attachments]
) -> None:
    database, files = backend
    _client, owner, server, channel = await community(stack, "crash")
    message = await send_files(stack, owner.token, channel["id"], [("lost.txt", b"lost", "text/plain")])
    url = message["attachments"][0]["url"]
    key = key_of(url)
    # The deletion committed (rows gone, job recorded), then the process died before deleting the file.
    shard = await _shard_of(database, int(message["id"]))
    async with database.shard_session(shard) as session:
        await session.execute(sa.delete(MessageRow).where(MessageRow.id == int(message["id"])))
        await session.commit()
    assert key in stack.stored_keys(key)
    assert (await get(url)).status_code == 404  # never served once the row is gone
    job = MediaPurgeRow(kind="KEYS", server_id=int(server["id"]), keys=json.dumps([key]))
    job_id = await _record_job(database, job, timedelta(minutes=1))

    await attachment_files.sweep(database, files, expire_uploads=False)
    assert key not in stack.stored_keys(key)
    assert not await _job_exists(database, job_id)


async def test_a_rolled_back_deletion_keeps_its_files(
    stack: Stack, backend: tuple[Database, Attachments]
) -> None:
    database, files = backend
    _client, owner, server, channel = await community(stack, "rollback")
    message = await send_files(stack, owner.token, channel["id"], [("kept.txt", b"kept", "text/plain")])
    key = key_of(message["attachments"][0]["url"])
    server_id, channel_id = int(server["id"]), int(channel["id"])
    # Jobs whose deletion never committed: the rows are all still there.
    recent = await _record_job(
        database,
        MediaPurgeRow(kind="KEYS", server_id=server_id, keys=json.dumps([key])),
        timedelta(minutes=1),
    )
    for_channel = await _record_job(
        database,
        MediaPurgeRow(kind="CHANNEL", server_id=server_id, channel_id=channel_id),
        timedelta(minutes=1),
    )
    for_server = await _record_job(
        database, MediaPurgeRow(kind="SERVER", server_id=server_id), timedelta(hours=2)
    )

    await attachment_files.sweep(database, files, expire_uploads=False)
    assert key in stack.stored_keys(key)
    assert (await get(message["attachments"][0]["url"])).content == b"kept"
    # Young jobs wait for their rows to go (a slow transaction); one older than an hour is dropped.
    assert await _job_exists(database, recent) and await _job_exists(database, for_channel)
    assert not await _job_exists(database, for_server)
    async with database.directory_session() as directory:
        await directory.execute(sa.delete(MediaPurgeRow).where(MediaPurgeRow.id.in_([recent, for_channel])))
        await directory.commit()


async def test_uploads_never_attached_expire(stack: Stack, backend: tuple[Database, Attachments]) -> None:
    database, files = backend
    _client, owner, _server, channel = await community(stack, "expire")
    old = await upload_first(stack, owner.token, channel["id"], ("old.txt", b"old", "text/plain"))
    fresh = await upload_first(stack, owner.token, channel["id"], ("new.txt", b"new", "text/plain"))
    shard = await _shard_of(database, int(old["id"]))
    async with database.shard_session(shard) as session:
        await session.execute(
            sa.update(AttachmentRow)
            .where(AttachmentRow.id == int(old["id"]))
            .values(created_at=datetime.now(UTC) - timedelta(hours=2))
        )
        await session.commit()

    await attachment_files.sweep(database, files, expire_uploads=True)
    assert key_of(old["url"]) not in stack.stored_keys(key_of(old["url"]))
    assert key_of(fresh["url"]) in stack.stored_keys(key_of(fresh["url"]))
    async with database.shard_session(shard) as session:
        assert await session.get(AttachmentRow, int(old["id"])) is None
        assert await session.get(AttachmentRow, int(fresh["id"])) is not None
