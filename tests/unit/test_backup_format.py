"""The sealed backup format refuses every damage it can see: wrong key, flipped bit, cut, reorder, splice."""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import AsyncIterator

import pytest

from beep.backup.sealed import FRAME_PLAINTEXT, BackupError, SealedReader, SealedWriter, parse_key

pytestmark = pytest.mark.unit

KEY = bytes(range(32))
HEADER_SIZE = 40


def seal(entries: dict[str, bytes], key: bytes = KEY) -> bytes:
    out = bytearray()

    async def sink(data: bytes) -> None:
        out.extend(data)

    async def run() -> None:
        writer = SealedWriter(key, sink)
        await writer.start()
        for name, body in entries.items():
            await writer.begin(name, {"kind": "test"})
            for start in range(0, len(body), 300_000):  # writes that do not line up with frames
                await writer.write(body[start : start + 300_000])
            await writer.end()
        await writer.finish({"note": "test"})

    asyncio.run(run())
    return bytes(out)


def unseal(blob: bytes, key: bytes = KEY) -> tuple[dict[str, bytes], dict[str, object]]:
    async def source() -> AsyncIterator[bytes]:
        for start in range(0, len(blob), 65_536):
            yield blob[start : start + 65_536]

    async def run() -> tuple[dict[str, bytes], dict[str, object]]:
        reader = SealedReader(key, source())
        found: dict[str, bytes] = {}
        async for entry, chunks in reader.entries():
            found[entry.name] = b"".join([chunk async for chunk in chunks])
        assert reader.summary is not None
        return found, reader.summary

    return asyncio.run(run())


def frames(blob: bytes) -> list[tuple[int, int]]:
    """(offset, length) of every frame, length prefix included."""
    spans, at = [], HEADER_SIZE
    while at < len(blob):
        (length,) = struct.unpack(">I", blob[at : at + 4])
        spans.append((at, 4 + length))
        at += 4 + length
    return spans


ENTRIES = {"db/one": os.urandom(FRAME_PLAINTEXT * 2 + 12_345), "db/two": b"", "media.jsonl": b"{}\n" * 10}


def test_round_trip_keeps_every_byte_and_the_summary() -> None:
    blob = seal(ENTRIES)
    found, summary = unseal(blob)
    assert found == ENTRIES
    assert summary["note"] == "test"
    assert [e["name"] for e in summary["entries"]] == list(ENTRIES)  # type: ignore[union-attr]


def test_nothing_of_the_content_is_in_clear() -> None:
    marker = b"alice@example.com secret message text"
    assert marker not in seal({"db/x": marker * 100})


def test_wrong_key_is_refused_by_name_before_decrypting() -> None:
    with pytest.raises(BackupError) as caught:
        unseal(seal(ENTRIES), key=bytes(32))
    assert caught.value.code == "WRONG_KEY"


@pytest.mark.parametrize("where", ["header", "first frame", "middle frame", "last frame"])
def test_a_flipped_bit_anywhere_is_refused(where: str) -> None:
    blob = bytearray(seal(ENTRIES))
    spans = frames(bytes(blob))
    offset = {
        "header": 30,  # inside the nonce prefix: authenticated as every frame's associated data
        "first frame": spans[0][0] + 10,
        "middle frame": spans[len(spans) // 2][0] + 100,
        "last frame": spans[-1][0] + spans[-1][1] - 1,
    }[where]
    blob[offset] ^= 0x01
    with pytest.raises(BackupError) as caught:
        unseal(bytes(blob))
    assert caught.value.code in {"TAMPERED", "CORRUPT"}


def test_a_cut_off_backup_is_refused_as_truncated() -> None:
    blob = seal(ENTRIES)
    last = frames(blob)[-1]
    for cut in (last[0], len(blob) - 1, HEADER_SIZE + 2):
        with pytest.raises(BackupError) as caught:
            unseal(blob[:cut])
        assert caught.value.code == "TRUNCATED"


def test_dropped_or_swapped_frames_are_refused() -> None:
    blob = seal(ENTRIES)
    spans = frames(blob)
    pieces = [blob[a : a + n] for a, n in spans]
    dropped = blob[:HEADER_SIZE] + b"".join(pieces[:2] + pieces[3:])
    swapped = blob[:HEADER_SIZE] + b"".join([pieces[0], pieces[2], pieces[1], *pieces[3:]])
    for damaged in (dropped, swapped):
        with pytest.raises(BackupError) as caught:
            unseal(damaged)
        assert caught.value.code == "TAMPERED"


def test_a_frame_spliced_from_another_backup_under_the_same_key_is_refused() -> None:
    one, other = seal(ENTRIES), seal(ENTRIES)
    a, b = frames(one)[1], frames(other)[1]
    spliced = one[: a[0]] + other[b[0] : b[0] + b[1]] + one[a[0] + a[1] :]
    with pytest.raises(BackupError) as caught:
        unseal(spliced)
    assert caught.value.code == "TAMPERED"


def test_data_after_the_final_frame_is_refused() -> None:
    with pytest.raises(BackupError) as caught:
        unseal(seal(ENTRIES) + b"\x00" * 10)
    assert caught.value.code == "CORRUPT"


def test_other_files_are_not_backups() -> None:
    with pytest.raises(BackupError) as caught:
        unseal(b"PGDMP" + b"\x00" * 100)
    assert caught.value.code == "NOT_A_BACKUP"


def test_keys_are_32_bytes_in_hex_or_base64() -> None:
    import base64

    assert parse_key(KEY.hex()) == KEY
    assert parse_key(base64.b64encode(KEY) + b"\n") == KEY
    for bad in ("", "abc", KEY.hex()[:-2], base64.b64encode(KEY[:16]).decode()):
        with pytest.raises(BackupError):
            parse_key(bad)


def test_an_entry_left_half_read_is_still_read_whole_and_checked() -> None:
    """A consumer may stop early (pg_restore --list exits once it has a dump's table of contents): the
    rest of the entry is read through, and the next entries and the summary still check out."""
    blob = seal(ENTRIES)

    async def source() -> AsyncIterator[bytes]:
        yield blob

    async def run() -> tuple[list[str], dict[str, object] | None]:
        reader = SealedReader(KEY, source())
        names = []
        async for entry, chunks in reader.entries():
            names.append(entry.name)
            async for _chunk in chunks:
                break  # stop after the first chunk
        return names, reader.summary

    names, summary = asyncio.run(run())
    assert names == list(ENTRIES) and summary is not None
