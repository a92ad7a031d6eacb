"""LocalDiskStorage against real temporary directories: round trips, limits, traversal, concurrency."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from media.errors import FileTooLarge, InvalidContentType, InvalidKey, MediaErrorCode, ObjectNotFound
from media.storage import LocalDiskStorage, StoredObject

KEY_RE = re.compile(r"t1/[0-9a-f]{32}")
VALID_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "media"


@pytest.fixture
def storage(root: Path) -> LocalDiskStorage:
    return LocalDiskStorage(root, max_size=1024 * 1024, chunk_size=4096)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if not p.is_dir()) if root.exists() else []


async def read_all(storage: LocalDiskStorage, key: str) -> bytes:
    async with storage.open(key) as file:
        return b"".join([chunk async for chunk in file])


async def stream(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        await asyncio.sleep(0)
        yield piece


# --- round trips -----------------------------------------------------------------------------------


async def test_bytes_round_trip_with_size_and_sha256(storage: LocalDiskStorage) -> None:
    data = os.urandom(10_000)

    info = await storage.put("t1", data, content_type="image/png")

    assert KEY_RE.fullmatch(info.key)
    assert info == StoredObject(info.key, len(data), hashlib.sha256(data).hexdigest(), "image/png")
    assert await storage.stat(info.key) == info
    assert await storage.exists(info.key)
    assert await read_all(storage, info.key) == data


async def test_stream_round_trip_coalesces_small_and_splits_large_pieces(storage: LocalDiskStorage) -> None:
    pieces = [b"x" * 7 for _ in range(1000)] + [os.urandom(20_000), b"", b"tail"]
    data = b"".join(pieces)

    info = await storage.put("avatars/u42", stream(*pieces), content_type="application/octet-stream")

    assert info.key.startswith("avatars/u42/")
    assert (info.size, info.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    async with storage.open(info.key) as file:
        assert file.info == info
        chunks = [chunk async for chunk in file]
    assert b"".join(chunks) == data
    assert max(map(len, chunks)) <= 4096  # read back in bounded chunks, not all at once


async def test_empty_file_is_an_object(storage: LocalDiskStorage) -> None:
    info = await storage.put("t1", b"", content_type="text/plain")
    assert (info.size, info.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert await read_all(storage, info.key) == b""


async def test_keys_are_server_generated_and_never_reused(storage: LocalDiskStorage, root: Path) -> None:
    first = await storage.put("t1", b"same", content_type="text/plain")
    second = await storage.put("t1", b"same", content_type="text/plain")

    assert first.key != second.key
    assert await read_all(storage, first.key) == await read_all(storage, second.key) == b"same"
    assert not [p for p in files_under(root) if p.name.startswith(".tmp-")]


async def test_content_type_is_normalised_to_its_essence(storage: LocalDiskStorage) -> None:
    info = await storage.put("t1", b"<p>", content_type="Text/HTML; charset=utf-8")
    assert info.content_type == "text/html"
    assert (await storage.stat(info.key)).content_type == "text/html"


@pytest.mark.parametrize(
    "content_type", ["", "image", "text/html\r\nSet-Cookie: a=b", "image/png x", "ímage/png", "image/\u212a"]
)
async def test_malformed_content_types_are_refused(
    storage: LocalDiskStorage, root: Path, content_type: str
) -> None:
    with pytest.raises(InvalidContentType) as caught:
        await storage.put("t1", b"data", content_type=content_type)
    assert caught.value.code is MediaErrorCode.INVALID_CONTENT_TYPE
    assert files_under(root) == []


async def test_fsync_can_be_turned_off(root: Path) -> None:
    storage = LocalDiskStorage(root, fsync=False)
    info = await storage.put("t1", b"quick", content_type="text/plain")
    assert await read_all(storage, info.key) == b"quick"


# --- size limit ------------------------------------------------------------------------------------


async def test_size_limit_mid_stream_stops_reading_and_leaves_nothing_behind(
    storage: LocalDiskStorage, root: Path
) -> None:
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"z" * 1000

    with pytest.raises(FileTooLarge) as caught:
        await storage.put("t1", endless(), content_type="image/png", max_size=50_000)

    assert caught.value.code is MediaErrorCode.FILE_TOO_LARGE and caught.value.limit == 50_000
    assert pulled <= 56  # stopped at the limit (plus one buffered chunk), not at the end of the stream
    assert files_under(root) == []


async def test_size_limit_is_inclusive(storage: LocalDiskStorage) -> None:
    info = await storage.put("t1", stream(b"a" * 600, b"b" * 400), content_type="text/plain", max_size=1000)
    assert info.size == 1000
    with pytest.raises(FileTooLarge):
        await storage.put("t1", stream(b"a" * 600, b"b" * 401), content_type="text/plain", max_size=1000)


async def test_default_limit_applies_to_bytes_before_anything_is_written(root: Path) -> None:
    storage = LocalDiskStorage(root, max_size=10)
    with pytest.raises(FileTooLarge):
        await storage.put("t1", b"x" * 11, content_type="text/plain")
    assert files_under(root) == []


async def test_failing_source_leaves_nothing_behind(storage: LocalDiskStorage, root: Path) -> None:
    async def disconnecting() -> AsyncIterator[bytes]:
        yield b"a" * 10_000
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await storage.put("t1", disconnecting(), content_type="text/plain")
    assert files_under(root) == []


async def test_cancelled_upload_leaves_nothing_behind(storage: LocalDiskStorage, root: Path) -> None:
    started = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"a" * 10_000
        started.set()
        await asyncio.sleep(3600)
        yield b"never"

    task = asyncio.create_task(storage.put("t1", slow(), content_type="text/plain"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert files_under(root) == []


# --- traversal -------------------------------------------------------------------------------------

TRAVERSAL_KEYS = [
    "../etc/passwd",
    f"../{VALID_ID}",
    f"t1/../{VALID_ID}",
    f"t1/../../{VALID_ID}",
    f"/etc/{VALID_ID}",
    f"/t1/{VALID_ID}",
    f"t1//{VALID_ID}",
    f"t1/./{VALID_ID}",
    f"t1\\..\\{VALID_ID}",
    f"t1\\{VALID_ID}",
    f"t1/{VALID_ID}\x00",
    f"t1\x00/{VALID_ID}",
    f"t1/{VALID_ID}\n",
    f"t1/{VALID_ID}/",
    f"t1/{VALID_ID}.meta.json",
    f"t1/{VALID_ID[:-1]}",
    f"t1/{VALID_ID.upper()}",
    f"T1/{VALID_ID}",
    f"t1/%2e%2e/{VALID_ID}",
    f"t1/\u2025/{VALID_ID}",  # two-dot leader
    f"t1/\uff0e\uff0e/{VALID_ID}",  # fullwidth full stops
    f"t1/{VALID_ID[:-1]}\u0663",  # Arabic-Indic digit three
    f"\uff54\uff11/{VALID_ID}",  # fullwidth "t1"
    f"t1\u2215{VALID_ID}",  # division slash
    f"a/b/c/d/{VALID_ID}",  # scopes are at most three segments
    f"{'a' * 64}/{VALID_ID}",
    f"t1/{VALID_ID} ",
    "",
]


@pytest.mark.parametrize("key", TRAVERSAL_KEYS)
async def test_malformed_and_traversal_keys_are_refused_everywhere(
    storage: LocalDiskStorage, key: str
) -> None:
    for operation in (storage.stat, storage.exists, storage.delete):
        with pytest.raises(InvalidKey) as caught:
            await operation(key)
        assert caught.value.code is MediaErrorCode.INVALID_KEY
    with pytest.raises(InvalidKey):
        async with storage.open(key):
            pass


@pytest.mark.parametrize("key", [None, 42, VALID_ID.encode()])
async def test_non_string_keys_are_refused(storage: LocalDiskStorage, key: object) -> None:
    with pytest.raises(InvalidKey):
        await storage.stat(key)  # type: ignore[arg-type]


BAD_SCOPES = ["", "..", "../t1", "t1/..", "/t1", "t1/", "t1//x", "t1\\x", "T1", "t 1", "t1\x00", "-t1", "_t1"]
BAD_SCOPES += ["a/b/c/d", "\uff54\uff11", "t\u0131", ".hidden", "t1/.", "a" * 64]


@pytest.mark.parametrize("scope", BAD_SCOPES)
async def test_malformed_scopes_are_refused_before_writing(
    storage: LocalDiskStorage, root: Path, scope: str
) -> None:
    with pytest.raises(InvalidKey):
        await storage.put(scope, b"data", content_type="text/plain")
    assert files_under(root) == []


async def test_a_symlink_out_of_the_root_is_not_followed(storage: LocalDiskStorage, tmp_path: Path) -> None:
    # Given an object stored under another root, and a scope directory that links to it
    outside = tmp_path / "outside"
    info = await LocalDiskStorage(outside).put("t1", b"secret", content_type="text/plain")
    storage.root.mkdir(parents=True)
    (storage.root / "t1").symlink_to(outside / "t1", target_is_directory=True)

    # then the same key through the link is refused, not served
    with pytest.raises(InvalidKey):
        await storage.stat(info.key)
    with pytest.raises(InvalidKey):
        async with storage.open(info.key):
            pass
    with pytest.raises(InvalidKey):
        await storage.delete(info.key)
    assert (outside / "t1").is_dir() and files_under(outside)


# --- missing, delete, concurrency ------------------------------------------------------------------


async def test_missing_objects(storage: LocalDiskStorage) -> None:
    key = f"t1/{VALID_ID}"
    assert not await storage.exists(key)
    with pytest.raises(ObjectNotFound) as caught:
        await storage.stat(key)
    assert caught.value.code is MediaErrorCode.NOT_FOUND
    with pytest.raises(ObjectNotFound):
        async with storage.open(key):
            pass
    assert await storage.delete(key) is False


async def test_delete_removes_the_object_and_its_metadata(storage: LocalDiskStorage, root: Path) -> None:
    kept = await storage.put("t1", b"keep me", content_type="text/plain")
    gone = await storage.put("t1", b"delete me", content_type="text/plain")

    assert await storage.delete(gone.key) is True

    assert not await storage.exists(gone.key)
    with pytest.raises(ObjectNotFound):
        await storage.stat(gone.key)
    with pytest.raises(ObjectNotFound):
        async with storage.open(gone.key):
            pass
    assert await storage.delete(gone.key) is False
    assert await read_all(storage, kept.key) == b"keep me"
    assert len(files_under(root)) == 2  # the kept object's data and metadata only


async def test_an_open_object_can_still_be_read_after_delete(storage: LocalDiskStorage) -> None:
    info = await storage.put("t1", b"a" * 10_000, content_type="text/plain")
    async with storage.open(info.key) as file:
        await storage.delete(info.key)
        assert len(b"".join([chunk async for chunk in file])) == 10_000


async def test_concurrent_writers(storage: LocalDiskStorage, root: Path) -> None:
    payloads = [os.urandom(1000 + i * 97) for i in range(40)]

    async def upload(i: int) -> StoredObject:
        pieces = [payloads[i][start : start + 300] for start in range(0, len(payloads[i]), 300)]
        return await storage.put("t1" if i % 2 else "t2/shared", stream(*pieces), content_type="text/plain")

    stored = await asyncio.gather(*(upload(i) for i in range(len(payloads))))

    assert len({info.key for info in stored}) == len(payloads)
    for payload, info in zip(payloads, stored, strict=True):
        assert info.sha256 == hashlib.sha256(payload).hexdigest()
        assert await read_all(storage, info.key) == payload
    assert len(files_under(root)) == 2 * len(payloads)  # no temporary files left over
