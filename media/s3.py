"""`S3Storage`: the `FileStorage` protocol on any S3-compatible object store (production).

aiobotocore (the asyncio port of botocore, maintained by aio-libs) drives it: every call is a coroutine
on the process's event loop, with no thread hop per chunk and no second HTTP stack beside botocore's own
request signing, retries and endpoint rules (aioboto3 is a thin wrapper over it that adds only boto3's
"resource" layer, which is not needed here).

An object is one S3 object under the storage key; its size, SHA-256 and content type travel as the
object's Content-Type and user metadata, so `stat` is one HEAD. `put` reads the upload into memory up to
the caller's limit (at most a message's attachments, 20 MiB by default) and sends it in one PutObject:
S3 writes are atomic, so an object exists only once complete, as on local disk. Keys are server-generated
and never reused, so there is no overwrite.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from media.errors import FileTooLarge, ObjectNotFound
from media.keys import new_key, validate_key, validate_scope
from media.mime import normalize_content_type
from media.storage import CHUNK_SIZE, DEFAULT_MAX_SIZE, StoredFile, StoredObject

_MISSING = {"404", "NoSuchKey", "NotFound"}
_DELETE_BATCH = 1000  # DeleteObjects' limit


class S3Storage:
    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        prefix: str = "",
        max_size: int = DEFAULT_MAX_SIZE,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self._bucket = bucket
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._max_size = max_size
        self._chunk_size = chunk_size
        self._client_args: dict[str, Any] = {
            "region_name": region,
            "endpoint_url": endpoint_url or None,
            "aws_access_key_id": access_key_id or None,
            "aws_secret_access_key": secret_access_key or None,
            "config": Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            ),
        }
        self._stack: AsyncExitStack | None = None
        self._client: Any = None

    async def _s3(self) -> Any:
        """One client (and connection pool) per storage, opened on first use."""
        if self._client is None:
            stack = AsyncExitStack()
            self._client = await stack.enter_async_context(
                get_session().create_client("s3", **self._client_args)
            )
            self._stack = stack
        return self._client

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            await stack.aclose()

    async def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (tests and first starts; production pre-creates it)."""
        s3 = await self._s3()
        try:
            await s3.head_bucket(Bucket=self._bucket)
        except ClientError as error:
            if _code(error) not in _MISSING:
                raise
            await s3.create_bucket(Bucket=self._bucket)

    def _object(self, key: str) -> str:
        return self._prefix + validate_key(key)

    async def put(
        self,
        scope: str,
        data: bytes | AsyncIterable[bytes],
        *,
        content_type: str,
        max_size: int | None = None,
    ) -> StoredObject:
        content_type = normalize_content_type(content_type)
        limit = self._max_size if max_size is None else max_size
        if isinstance(data, bytes | bytearray | memoryview):
            body = bytes(data)
            if len(body) > limit:
                raise FileTooLarge(limit)
        else:
            buffer = bytearray()
            async for chunk in data:
                if len(buffer) + len(chunk) > limit:
                    raise FileTooLarge(limit)
                buffer += chunk
            body = bytes(buffer)
        key = new_key(scope)
        digest = hashlib.sha256(body).hexdigest()
        s3 = await self._s3()
        await s3.put_object(
            Bucket=self._bucket,
            Key=self._object(key),
            Body=body,
            ContentType=content_type,
            Metadata={"sha256": digest},
        )
        return StoredObject(key=key, size=len(body), sha256=digest, content_type=content_type)

    async def stat(self, key: str) -> StoredObject:
        s3 = await self._s3()
        try:
            head = await s3.head_object(Bucket=self._bucket, Key=self._object(key))
        except ClientError as error:
            if _code(error) in _MISSING:
                raise ObjectNotFound(key) from None
            raise
        return _info(key, head)

    @asynccontextmanager
    async def open(self, key: str) -> AsyncIterator[StoredFile]:
        s3 = await self._s3()
        try:
            response = await s3.get_object(Bucket=self._bucket, Key=self._object(key))
        except ClientError as error:
            if _code(error) in _MISSING:
                raise ObjectNotFound(key) from None
            raise
        body = response["Body"]
        try:
            yield StoredFile(_info(key, response), _read_chunks(body, self._chunk_size))
        finally:
            body.close()

    async def delete(self, key: str) -> bool:
        # S3 deletes answer 204 whether or not the object existed: ask first, for the protocol's answer.
        existed = await self.exists(key)
        s3 = await self._s3()
        await s3.delete_object(Bucket=self._bucket, Key=self._object(key))
        return existed

    async def exists(self, key: str) -> bool:
        try:
            await self.stat(key)
        except ObjectNotFound:
            return False
        return True

    async def delete_scope(self, scope: str) -> int:
        prefix = self._prefix + validate_scope(scope) + "/"
        s3 = await self._s3()
        removed = 0
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = keys[start : start + _DELETE_BATCH]
                await s3.delete_objects(Bucket=self._bucket, Delete={"Objects": batch, "Quiet": True})
                removed += len(batch)
        return removed


def _info(key: str, head: dict[str, Any]) -> StoredObject:
    return StoredObject(
        key=key,
        size=int(head["ContentLength"]),
        sha256=str(head.get("Metadata", {}).get("sha256", "")),
        content_type=str(head.get("ContentType", "application/octet-stream")),
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


async def _read_chunks(body: Any, size: int) -> AsyncIterator[bytes]:
    while chunk := await body.read(size):
        yield chunk
