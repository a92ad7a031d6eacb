"""The sealed backup format: one file, AES-256-GCM in 1 MiB frames, tamper- and truncation-evident.

A backup is a plaintext header followed by frames. Each frame is one record (begin an entry, a piece of
its data, end it, or the final summary), sealed on its own with AES-256-GCM under the nonce
`prefix(7) || counter(4) || final(1)` and the header as associated data: a flipped bit, a reordered,
dropped or repeated frame, a spliced-in frame from another backup (other prefix) or a cut-off tail (no
frame marked final) each fail authentication. This is the STREAM construction (Hoang, Reyhanitabar,
Rogaway, Vizár 2015), as in age and Tink's streaming AEAD: a backup never has to fit in memory, and a
reader learns of any damage before it acts on the damaged frame.

The header carries a key id (an HMAC of a fixed label under the key, revealing nothing about it), so a
backup opened with the wrong key is refused by name before any decryption is tried.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import json
import os
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"BEEPBKP1"
VERSION = 1
FRAME_PLAINTEXT = 1 << 20  # 1 MiB of data per frame
_HEADER = struct.Struct(">8sB16s7sQ")  # magic, version, key id, nonce prefix, created (unix ms)
_LENGTH = struct.Struct(">I")
_MAX_FRAME = FRAME_PLAINTEXT + 64 * 1024  # a record's own bytes plus GCM's tag, with room to spare
KEY_BYTES = 32


class BackupError(Exception):
    """A backup cannot be read or written; `code` is stable for automation, the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Record(enum.IntEnum):
    BEGIN = 1  # JSON: the entry's name and description
    DATA = 2  # raw bytes of the current entry
    END = 3  # JSON: the entry's size and SHA-256
    FINAL = 4  # JSON: the backup's summary; always the last frame


def key_id(key: bytes) -> bytes:
    return hmac.new(key, b"beep backup key id v1", hashlib.sha256).digest()[:16]


def parse_key(text: str | bytes) -> bytes:
    """A key file or variable holds 32 random bytes as 64 hex digits or base64 (`beep backup keygen`)."""
    import base64
    import binascii

    raw = text.strip() if isinstance(text, bytes) else text.strip().encode()
    candidates: list[bytes] = []
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        candidates.append(bytes.fromhex(raw.decode()))
    with contextlib.suppress(binascii.Error, ValueError):
        candidates.append(base64.b64decode(raw, validate=True))
    for candidate in candidates:
        if len(candidate) == KEY_BYTES:
            return candidate
    raise BackupError("BAD_KEY", "a backup key is 32 bytes written as 64 hex digits or base64")


@dataclass(frozen=True)
class Header:
    key_id: bytes
    prefix: bytes
    created_ms: int

    def pack(self) -> bytes:
        return _HEADER.pack(MAGIC, VERSION, self.key_id, self.prefix, self.created_ms)

    @classmethod
    def unpack(cls, raw: bytes) -> Header:
        if len(raw) < _HEADER.size or not raw.startswith(MAGIC):
            raise BackupError("NOT_A_BACKUP", "this is not a Beep backup (wrong magic bytes)")
        _magic, version, kid, prefix, created = _HEADER.unpack(raw[: _HEADER.size])
        if version != VERSION:
            raise BackupError("UNSUPPORTED_VERSION", f"backup format version {version} is not supported")
        return cls(kid, prefix, created)


def _nonce(prefix: bytes, counter: int, final: bool) -> bytes:
    if counter >= 1 << 32:
        raise BackupError("TOO_LARGE", "a backup holds at most 2^32 frames")
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


Sink = Callable[[bytes], Awaitable[None]]


@dataclass
class SealedWriter:
    """Writes records to `sink` as sealed frames. begin/write/end per entry, then `finish` once."""

    key: bytes
    sink: Sink
    header: Header = field(init=False)
    _aead: AESGCM = field(init=False)
    _aad: bytes = field(init=False)
    _counter: int = 0
    _pending: bytearray = field(default_factory=bytearray)
    _entry: str | None = None
    _hash: Any = None
    _size: int = 0
    bytes_written: int = 0
    entries: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise BackupError("BAD_KEY", "a backup key is 32 bytes")
        self.header = Header(key_id(self.key), os.urandom(7), int(time.time() * 1000))
        self._aead = AESGCM(self.key)
        self._aad = self.header.pack()

    async def start(self) -> None:
        await self._emit(self._aad)

    async def begin(self, name: str, description: dict[str, Any]) -> None:
        if self._entry is not None:
            raise RuntimeError(f"entry {self._entry} is still open")
        self._entry, self._hash, self._size = name, hashlib.sha256(), 0
        await self._frame(Record.BEGIN, json.dumps({"name": name, **description}).encode())

    async def write(self, data: bytes) -> None:
        if self._entry is None:
            raise RuntimeError("write outside an entry")
        self._hash.update(data)
        self._size += len(data)
        self._pending += data
        while len(self._pending) >= FRAME_PLAINTEXT:
            await self._frame(Record.DATA, bytes(self._pending[:FRAME_PLAINTEXT]))
            del self._pending[:FRAME_PLAINTEXT]

    async def end(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._entry is None:
            raise RuntimeError("end outside an entry")
        if self._pending:
            await self._frame(Record.DATA, bytes(self._pending))
            self._pending.clear()
        entry = {"name": self._entry, "size": self._size, "sha256": self._hash.hexdigest(), **(extra or {})}
        await self._frame(Record.END, json.dumps(entry).encode())
        self.entries.append(entry)
        self._entry = None
        return entry

    async def finish(self, summary: dict[str, Any]) -> None:
        if self._entry is not None:
            raise RuntimeError(f"entry {self._entry} is still open")
        body = json.dumps({**summary, "entries": self.entries}).encode()
        await self._frame(Record.FINAL, body, final=True)

    async def _frame(self, kind: Record, body: bytes, final: bool = False) -> None:
        sealed = self._aead.encrypt(
            _nonce(self.header.prefix, self._counter, final), bytes([kind]) + body, self._aad
        )
        self._counter += 1
        await self._emit(_LENGTH.pack(len(sealed)) + sealed)

    async def _emit(self, data: bytes) -> None:
        self.bytes_written += len(data)
        await self.sink(data)


@dataclass(frozen=True)
class Entry:
    name: str
    description: dict[str, Any]


class SealedReader:
    """Reads a sealed backup from an async byte source, authenticating every frame before using it.

    `entries()` yields (entry, chunks) pairs; consume each entry's chunks before the next. An entry's
    size and SHA-256 are checked at its end; `summary` is set once the final frame has been read, and a
    source that ends before it is refused as truncated.
    """

    def __init__(self, key: bytes, source: AsyncIterator[bytes]) -> None:
        self._key = key
        self._source = source
        self._buffer = bytearray()
        self._eof = False
        self._counter = 0
        self.header: Header | None = None
        self.summary: dict[str, Any] | None = None
        self.bytes_read = 0

    async def open(self) -> Header:
        raw = await self._take(_HEADER.size, what="header")
        header = Header.unpack(raw)
        if not hmac.compare_digest(header.key_id, key_id(self._key)):
            raise BackupError(
                "WRONG_KEY",
                f"this backup was sealed with key {header.key_id.hex()[:16]}, not with the key given "
                f"({key_id(self._key).hex()[:16]})",
            )
        self.header = header
        self._aad = header.pack()
        self._aead = AESGCM(self._key)
        return header

    async def entries(self) -> AsyncIterator[tuple[Entry, AsyncIterator[bytes]]]:
        if self.header is None:
            await self.open()
        while True:
            kind, body = await self._next()
            if kind is Record.FINAL:
                self.summary = json.loads(body)
                if not await self._at_end():
                    raise BackupError("CORRUPT", "data follows the backup's final frame")
                return
            if kind is not Record.BEGIN:
                raise BackupError("CORRUPT", f"expected an entry's start, found a {kind.name} record")
            meta = json.loads(body)
            entry = Entry(str(meta.pop("name")), meta)
            state: dict[str, Any] = {"done": False}
            chunks = self._chunks(entry, state)
            yield entry, chunks
            # A consumer that stopped early (pg_restore --list exits once it has the table of contents)
            # leaves the rest of the entry unread: read it through the same iterator, so the entry's size
            # and SHA-256 are still checked over all of it.
            if not state["done"]:
                async for _ in chunks:
                    pass

    async def _chunks(self, entry: Entry, state: dict[str, Any]) -> AsyncIterator[bytes]:
        digest, size = hashlib.sha256(), 0
        while True:
            kind, body = await self._next()
            if kind is Record.DATA:
                digest.update(body)
                size += len(body)
                yield body
                continue
            if kind is not Record.END:
                raise BackupError("CORRUPT", f"entry {entry.name}: unexpected {kind.name} record")
            end = json.loads(body)
            if end.get("size") != size or end.get("sha256") != digest.hexdigest():
                raise BackupError("CORRUPT", f"entry {entry.name}: its size or SHA-256 does not match")
            state["done"] = True
            return

    async def _next(self) -> tuple[Record, bytes]:
        assert self.header is not None
        (length,) = _LENGTH.unpack(await self._take(_LENGTH.size, what="frame"))
        if not 17 <= length <= _MAX_FRAME:
            raise BackupError("CORRUPT", f"frame {self._counter}: impossible length {length}")
        sealed = await self._take(length, what="frame")
        plain = None
        for final in (False, True):
            try:
                plain = self._aead.decrypt(
                    _nonce(self.header.prefix, self._counter, final), sealed, self._aad
                )
            except InvalidTag:
                continue
            break
        if plain is None:
            raise BackupError(
                "TAMPERED", f"frame {self._counter} fails authentication: the backup was altered or damaged"
            )
        self._counter += 1
        kind = Record(plain[0])
        if (kind is Record.FINAL) != final:
            raise BackupError("TAMPERED", f"frame {self._counter - 1}: final flag and record disagree")
        return kind, plain[1:]

    async def _take(self, n: int, *, what: str) -> bytes:
        while len(self._buffer) < n and not self._eof:
            try:
                chunk = await anext(self._source)
            except StopAsyncIteration:
                self._eof = True
                break
            self._buffer += chunk
            self.bytes_read += len(chunk)
        if len(self._buffer) < n:
            raise BackupError("TRUNCATED", f"the backup ends inside a {what}: it is incomplete")
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    async def _at_end(self) -> bool:
        if self._buffer:
            return False
        while not self._eof:
            try:
                chunk = await anext(self._source)
            except StopAsyncIteration:
                self._eof = True
                break
            if chunk:
                return False
        return True
