"""One contract for every `FileStorage` backend: local disk and S3 (moto's S3 server, started here).

The same assertions run against both, so a caller (pictures, attachments, purge jobs) cannot tell which
one it has: immutable server-generated keys, metadata, streamed reads, limits, deletes, scope deletes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from media.errors import FileTooLarge, InvalidKey, ObjectNotFound
from media.s3 import S3Storage
from media.storage import FileStorage, LocalDiskStorage
from tests.harness.services import S3Server

LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    server = S3Server(bucket="beep-contract").start()
    yield server
    server.stop()


@pytest.fixture(params=["local", "s3"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path, s3_server: S3Server
) -> AsyncIterator[FileStorage]:
    if request.param == "local":
        yield LocalDiskStorage(tmp_path / "media", max_size=LIMIT, chunk_size=4096)
        return
    backend = S3Storage(
        bucket=s3_server.bucket,
        endpoint_url=s3_server.endpoint_url,
        access_key_id=s3_server.access_key_id,
        secret_access_key=s3_server.secret_access_key,
        prefix=f"run-{os.urandom(4).hex()}",  # each test its own corner of the bucket
        max_size=LIMIT,
        chunk_size=4096,
    )
    yield backend
    await backend.close()


async def read_all(storage: FileStorage, key: str) -> bytes:
    async with storage.open(key) as file:
        return b"".join([chunk async for chunk in file])


async def stream(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        await asyncio.sleep(0)
        yield piece


async def test_round_trip_with_metadata(storage: FileStorage) -> None:
    data = os.urandom(50_000)
    info = await storage.put("t1/c2", data, content_type="Image/PNG; charset=x")
    assert re.fullmatch(r"t1/c2/[0-9a-f]{32}", info.key)
    digest = hashlib.sha256(data).hexdigest()
    assert (info.size, info.sha256, info.content_type) == (len(data), digest, "image/png")
    assert await storage.stat(info.key) == info
    assert await storage.exists(info.key)
    assert await read_all(storage, info.key) == data
    again = await storage.put("t1/c2", data, content_type="image/png")
    assert again.key != info.key  # never an overwrite


async def test_streamed_put_and_limits(storage: FileStorage) -> None:
    info = await storage.put("t1", stream(b"a" * 1000, b"b" * 9000), content_type="text/plain")
    assert await read_all(storage, info.key) == b"a" * 1000 + b"b" * 9000
    with pytest.raises(FileTooLarge):
        await storage.put("t1", b"x" * (LIMIT + 1), content_type="text/plain")
    with pytest.raises(FileTooLarge):
        await storage.put("t1", stream(b"x" * LIMIT, b"y"), content_type="text/plain")
    with pytest.raises(FileTooLarge):
        await storage.put("t1", b"x" * 11, content_type="text/plain", max_size=10)
    assert (await storage.put("t1", b"x" * 10, content_type="text/plain", max_size=10)).size == 10


async def test_missing_objects_and_bad_keys(storage: FileStorage) -> None:
    missing = "t1/" + "0" * 32
    with pytest.raises(ObjectNotFound):
        await storage.stat(missing)
    with pytest.raises(ObjectNotFound):
        async with storage.open(missing):
            pass
    assert not await storage.exists(missing)
    assert await storage.delete(missing) is False
    for bad in ("../etc/passwd", "t1/../../x", "T1/" + "0" * 32, "t1/" + "0" * 31):
        with pytest.raises(InvalidKey):
            await storage.stat(bad)
    with pytest.raises(InvalidKey):
        await storage.put("../up", b"x", content_type="text/plain")


async def test_delete_and_delete_scope(storage: FileStorage) -> None:
    # Channel scopes as Beep makes them (`c<id>`, media/attachments.py). On local disk an object lives in
    # <scope>/<first two hex digits of its id>/: a two-character scope segment such as "c1" can be taken
    # for that directory (1 run in 256 failed here with "t7/c1"); real channel ids are 18 digits.
    one = await storage.put("t7/c101", b"one", content_type="text/plain")
    two = await storage.put("t7/c101", b"two", content_type="text/plain")
    other_channel = await storage.put("t7/c102", b"three", content_type="text/plain")
    picture = await storage.put("t7", b"pic", content_type="image/webp")
    neighbour = await storage.put("t70/c101", b"not mine", content_type="text/plain")  # a prefix, not a scope

    assert await storage.delete(one.key) is True
    assert not await storage.exists(one.key)
    assert await storage.delete(one.key) is False

    await storage.delete_scope("t7/c101")
    assert not await storage.exists(two.key)
    assert await storage.exists(other_channel.key) and await storage.exists(picture.key)

    await storage.delete_scope("t7")
    assert not await storage.exists(other_channel.key) and not await storage.exists(picture.key)
    assert await storage.exists(neighbour.key)
    assert await storage.delete_scope("t7") == 0  # nothing left, not an error
    with pytest.raises(InvalidKey):
        await storage.delete_scope("../t7")
