"""Where backups go: a local directory (a mounted volume) or an S3-compatible bucket, with retention.

A backup becomes visible only once complete: on disk it is written as `NAME.partial`, flushed and renamed;
on S3 it is a multipart upload, completed after the last part (and aborted on failure), so a reader
never mistakes half a backup for one. Names sort by time (`beep-backup-20261205T001500.123Z.bkp`), which is
what retention (`keep`) relies on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from beep.backup.sealed import BackupError
from subgraphs.kernel.settings import Settings

SUFFIX = ".bkp"
PREFIX = "beep-backup-"
_PART = 8 << 20  # S3 multipart parts (the minimum is 5 MiB, but for the last)


def new_name() -> str:
    """To the millisecond: two backups in one second must not share a name (S3 would overwrite the first)."""
    now = time.time()
    return f"{PREFIX}{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}.{int(now * 1000) % 1000:03d}Z{SUFFIX}"


class Destination(Protocol):
    location: str

    async def write(self, data: bytes) -> None: ...
    async def commit(self) -> None: ...
    async def abort(self) -> None: ...


@dataclass
class _S3Target:
    bucket: str
    key: str


def _parse_s3(url: str) -> _S3Target:
    rest = url.removeprefix("s3://")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise BackupError("BAD_LOCATION", f"expected s3://BUCKET/PREFIX, got {url}")
    return _S3Target(bucket, key)


@contextlib.asynccontextmanager
async def s3_client(settings: Settings, *, backups: bool = True) -> AsyncIterator[Any]:
    """The backups' store (`backup_s3_*`, each falling back to the media store's), or the media store."""
    from aiobotocore.session import get_session
    from botocore.config import Config

    own = backups and bool(settings.backup_s3_endpoint_url or settings.backup_s3_access_key_id)
    async with get_session().create_client(
        "s3",
        region_name=(backups and settings.backup_s3_region) or settings.s3_region,
        endpoint_url=(settings.backup_s3_endpoint_url if own else settings.s3_endpoint_url) or None,
        aws_access_key_id=(settings.backup_s3_access_key_id if own else settings.s3_access_key_id) or None,
        aws_secret_access_key=(settings.backup_s3_secret_access_key if own else settings.s3_secret_access_key)
        or None,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    ) as client:
        yield client


class LocalFile:
    def __init__(self, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / name
        self._partial = directory / (name + ".partial")
        fd = os.open(self._partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._handle = os.fdopen(fd, "wb")
        self.location = str(self.path)

    async def write(self, data: bytes) -> None:
        self._handle.write(data)

    async def commit(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.rename(self._partial, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    async def abort(self) -> None:
        self._handle.close()
        self._partial.unlink(missing_ok=True)


class S3Upload:
    def __init__(self, client: Any, target: _S3Target, name: str) -> None:
        self._client = client
        self._bucket = target.bucket
        self._key = (target.key.rstrip("/") + "/" if target.key.strip("/") else "") + name
        self.location = f"s3://{self._bucket}/{self._key}"
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None

    async def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= _PART:
            await self._send_part()

    async def _send_part(self) -> None:
        if self._upload_id is None:
            created = await self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        answer = await self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self._buffer.clear()

    async def commit(self) -> None:
        if self._upload_id is None:  # small enough for one request
            await self._client.put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer))
            return
        if self._buffer:
            await self._send_part()
        await self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    async def abort(self) -> None:
        if self._upload_id is not None:
            await self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
            )


@contextlib.asynccontextmanager
async def open_destination(location: str, settings: Settings) -> AsyncIterator[Destination]:
    """A new backup at `location` (a directory or s3://BUCKET/PREFIX), committed only if the body ends."""
    name = new_name()
    if location.startswith("s3://"):
        async with s3_client(settings) as client:
            upload = S3Upload(client, _parse_s3(location), name)
            try:
                yield upload
            except BaseException:
                await upload.abort()
                raise
            await upload.commit()
        return
    local = LocalFile(Path(location), name)
    try:
        yield local
    except BaseException:
        await local.abort()
        raise
    await local.commit()


@contextlib.asynccontextmanager
async def open_source(location: str, settings: Settings) -> AsyncIterator[AsyncIterator[bytes]]:
    """The bytes of one backup (a file path or s3://BUCKET/KEY)."""
    if location.startswith("s3://"):
        target = _parse_s3(location)
        async with s3_client(settings) as client:
            try:
                response = await client.get_object(Bucket=target.bucket, Key=target.key)
            except client.exceptions.NoSuchKey:
                raise BackupError("NOT_FOUND", f"no backup at {location}") from None

            async def body() -> AsyncIterator[bytes]:
                async with response["Body"] as stream:
                    while chunk := await stream.read(1 << 20):
                        yield chunk

            yield body()
        return
    path = Path(location)
    if not await asyncio.to_thread(path.is_file):
        raise BackupError("NOT_FOUND", f"no backup at {location}")
    handle = await asyncio.to_thread(path.open, "rb")

    async def read() -> AsyncIterator[bytes]:
        while chunk := await asyncio.to_thread(handle.read, 1 << 20):
            yield chunk

    try:
        yield read()
    finally:
        handle.close()


async def prune(location: str, settings: Settings, keep: int) -> list[str]:
    """Delete all but the newest `keep` backups at `location`; returns what was deleted."""
    if keep < 1:
        return []
    if location.startswith("s3://"):
        target = _parse_s3(location)
        prefix = target.key.rstrip("/") + "/" if target.key.strip("/") else ""
        async with s3_client(settings) as client:
            keys: list[str] = []
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=target.bucket, Prefix=prefix + PREFIX):
                keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(SUFFIX)]
            doomed = sorted(keys)[:-keep]
            for key in doomed:
                await client.delete_object(Bucket=target.bucket, Key=key)
            return [f"s3://{target.bucket}/{key}" for key in doomed]
    return await asyncio.to_thread(_prune_directory, Path(location), keep)


def _prune_directory(directory: Path, keep: int) -> list[str]:
    doomed = sorted(directory.glob(f"{PREFIX}*{SUFFIX}"))[:-keep]
    for path in doomed:
        path.unlink()
    return [str(path) for path in doomed]
