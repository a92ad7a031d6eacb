"""File storage: the `FileStorage` protocol and `LocalDiskStorage`, its embedded implementation.

Objects are immutable: `put` always creates a new server-generated key (see media/keys.py), so there is no
overwrite, no partial update, and a URL to a key always means the same bytes.

On disk an object is two files under `<root>/<scope>/<first two hex digits of the id>/`:
`<id>.meta.json` (size, sha256, content type) and `<id>` (the bytes). Both are written to a temporary file
in the same directory and renamed into place; the data rename comes last and is the commit: an object
exists exactly when its data file does. A crash can leave at most a small orphan `.meta.json` or a
`.tmp-*` file, never a visible half-written object.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from media.errors import FileTooLarge, InvalidKey, ObjectNotFound
from media.keys import new_key, split_key, validate_scope
from media.mime import normalize_content_type

CHUNK_SIZE = 64 * 1024
DEFAULT_MAX_SIZE = 25 * 1024 * 1024
_META_SUFFIX = ".meta.json"
_TEMP_PREFIX = ".tmp-"  # a leading dot: never a valid key segment or object id


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    sha256: str  # lowercase hex
    content_type: str


@dataclass(frozen=True, slots=True)
class StoredFile:
    """An opened object: its metadata, and its bytes as an async iterator (consume it once)."""

    info: StoredObject
    chunks: AsyncIterator[bytes]

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks


class FileStorage(Protocol):
    async def put(
        self,
        scope: str,
        data: bytes | AsyncIterable[bytes],
        *,
        content_type: str,
        max_size: int | None = None,
    ) -> StoredObject:
        """Store `data` under a new key in `scope`; `FileTooLarge` (nothing kept) past `max_size` bytes."""
        ...

    async def stat(self, key: str) -> StoredObject:
        """The object's metadata, or `ObjectNotFound`."""
        ...

    def open(self, key: str) -> AbstractAsyncContextManager[StoredFile]:
        """`async with storage.open(key) as file: async for chunk in file: ...`; `ObjectNotFound` on entry."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove the object; False when there was none (deleting twice is not an error)."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete_scope(self, scope: str) -> int:
        """Remove every object whose key lies in `scope` or below it (a tenant's or a channel's files);
        the number removed (an estimate where the backend cannot count cheaply)."""
        ...


class LocalDiskStorage:
    def __init__(
        self,
        root: Path,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        fsync: bool = True,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        if max_size < 0 or chunk_size < 1:
            raise ValueError("max_size must be >= 0 and chunk_size >= 1")
        self._root = root.resolve()
        self._max_size = max_size
        self._fsync = fsync
        self._chunk_size = chunk_size

    @property
    def root(self) -> Path:
        return self._root

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
        if isinstance(data, bytes | bytearray | memoryview) and len(data) > limit:
            raise FileTooLarge(limit)
        key = new_key(scope)
        path, writer = await asyncio.to_thread(self._start_put, key)
        try:
            async for chunk in _rechunk(data, self._chunk_size):
                if writer.size + len(chunk) > limit:
                    raise FileTooLarge(limit)
                await asyncio.to_thread(writer.write, chunk)
        except BaseException:
            writer.discard()  # synchronously: it must also happen when the task is being cancelled
            raise
        info = StoredObject(key=key, size=writer.size, sha256=writer.hexdigest(), content_type=content_type)
        # Not cancellable half-way: the thread either commits or cleans up after itself.
        await asyncio.to_thread(_commit, writer, path, info, self._fsync)
        return info

    async def stat(self, key: str) -> StoredObject:
        return await asyncio.to_thread(self._stat, key)

    @asynccontextmanager
    async def open(self, key: str) -> AsyncIterator[StoredFile]:
        handle, info = await asyncio.to_thread(self._open, key)
        try:
            yield StoredFile(info, _read_chunks(handle, self._chunk_size))
        finally:
            handle.close()

    async def delete(self, key: str) -> bool:
        return await asyncio.to_thread(self._delete, key)

    async def exists(self, key: str) -> bool:
        try:
            await self.stat(key)
        except ObjectNotFound:
            return False
        return True

    async def delete_scope(self, scope: str) -> int:
        return await asyncio.to_thread(self._delete_scope, validate_scope(scope))

    # --- blocking helpers, always run in a worker thread -------------------------------------------

    def _path(self, key: str) -> Path:
        """The data file of a key. Keys are validated first (no `.`, `/`-prefix, `\\`, NUL, non-ASCII...);
        the resolved path must still be inside the root, so a symlink planted in the tree cannot escape."""
        scope, object_id = split_key(key)
        path = self._root / scope / object_id[:2] / object_id
        if not path.resolve().is_relative_to(self._root):
            raise InvalidKey("invalid storage key")
        return path

    def _start_put(self, key: str) -> tuple[Path, _TempWriter]:
        path = self._path(key)
        return path, _TempWriter.create(path.parent)

    def _stat(self, key: str) -> StoredObject:
        path = self._path(key)
        try:
            if not stat.S_ISREG(path.stat().st_mode):
                raise ObjectNotFound(key)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        return _read_meta(path, key)

    def _open(self, key: str) -> tuple[BinaryIO, StoredObject]:
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        handle = os.fdopen(fd, "rb")
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ObjectNotFound(key)
            return handle, _read_meta(path, key)
        except BaseException:
            handle.close()
            raise

    def _delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            path.unlink()  # the data file goes first: from here on the object does not exist
        except FileNotFoundError:
            existed = False
        else:
            existed = True
        _meta_path(path).unlink(missing_ok=True)
        return existed

    def _delete_scope(self, scope: str) -> int:
        directory = self._root / scope
        if not directory.resolve().is_relative_to(self._root) or not directory.is_dir():
            return 0
        removed = 0
        # Data files first (each one's removal is the object's end), then what is left of the tree.
        for path in sorted(directory.rglob("*"), reverse=True):
            if path.is_symlink() or path.is_file():
                if not path.name.endswith(_META_SUFFIX) and not path.name.startswith(_TEMP_PREFIX):
                    removed += 1
                path.unlink(missing_ok=True)
            elif path.is_dir():
                with contextlib.suppress(OSError):
                    path.rmdir()
        with contextlib.suppress(OSError):
            directory.rmdir()
        return removed


class _TempWriter:
    """A temporary file next to the final one, hashing what is written."""

    def __init__(self, path: Path, handle: BinaryIO) -> None:
        self.path = path
        self.handle = handle
        self.size = 0
        self._hash = hashlib.sha256()

    @classmethod
    def create(cls, directory: Path) -> _TempWriter:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=_TEMP_PREFIX)
        return cls(Path(name), os.fdopen(fd, "wb"))

    def write(self, chunk: bytes) -> None:
        self.handle.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def finish(self, fsync: bool) -> None:
        self.handle.flush()
        if fsync:
            os.fsync(self.handle.fileno())
        self.handle.close()

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.handle.close()
        self.path.unlink(missing_ok=True)


def _commit(writer: _TempWriter, path: Path, info: StoredObject, fsync: bool) -> None:
    meta = _meta_path(path)
    try:
        writer.finish(fsync)
        _write_atomically(meta, json.dumps(asdict(info)).encode(), fsync)
        # The commit. 128-bit random ids make a clash not worth a no-clobber os.link dance.
        os.replace(writer.path, path)
    except BaseException:
        writer.discard()
        meta.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_directory(path.parent)


def _write_atomically(path: Path, content: bytes, fsync: bool) -> None:
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=_TEMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _meta_path(data_path: Path) -> Path:
    return data_path.with_name(data_path.name + _META_SUFFIX)


def _read_meta(data_path: Path, key: str) -> StoredObject:
    try:
        raw = json.loads(_meta_path(data_path).read_bytes())
    except FileNotFoundError:
        raise ObjectNotFound(key) from None
    info = StoredObject(
        key=str(raw["key"]),
        size=int(raw["size"]),
        sha256=str(raw["sha256"]),
        content_type=str(raw["content_type"]),
    )
    if info.key != key:
        raise ValueError(f"metadata of {key} names another key")
    return info


# --- async helpers -----------------------------------------------------------------------------------


async def _rechunk(data: bytes | AsyncIterable[bytes], size: int) -> AsyncIterator[bytes]:
    """Chunks of at most `size` bytes (small ones coalesced), so each worker-thread hop does real work."""
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        for start in range(0, len(view), size):
            yield bytes(view[start : start + size])
        return
    buffer = bytearray()
    async for piece in data:
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


async def _read_chunks(handle: BinaryIO, size: int) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(handle.read, size):
        yield chunk
