"""Content types read from bytes (media/sniff.py), and which of them are only ever downloads."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from media.sniff import OCTET_STREAM, claims_image, is_dangerous, served_type, sniff


def encoded(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (encoded("PNG"), "image/png"),
        (encoded("JPEG"), "image/jpeg"),
        (encoded("GIF"), "image/gif"),
        (encoded("WEBP"), "image/webp"),
        (encoded("BMP"), "image/bmp"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"PK\x03\x04" + b"\x00" * 30, "application/zip"),
        (b"\x1f\x8b\x08\x00", "application/gzip"),
        (b"OggS\x00\x02", "audio/ogg"),
        (b"ID3\x04\x00", "audio/mpeg"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00", "video/mp4"),
        (b"\x1aE\xdf\xa3\x01", "video/webm"),
        (b"\x7fELF\x02\x01", "application/x-executable"),
        (b"MZ\x90\x00", "application/x-msdownload"),
        (b"\xcf\xfa\xed\xfe\x07", "application/x-mach-binary"),
        (b"#!/bin/sh\nrm -rf ~\n", "text/x-shellscript"),
        (b"<!DOCTYPE html><html><body>hi</body></html>", "text/html"),
        (b"  \n<!-- a comment --><SCRIPT>alert(1)</SCRIPT>", "text/html"),
        (b"\xef\xbb\xbf<html>", "text/html"),
        (b"hello <script>alert(1)</script>", "text/html"),  # a sniffing browser would run it
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml"),
        (b"<svg onload=alert(1)>", "image/svg+xml"),
        (b'<?xml version="1.0"?><note>x</note>', "application/xml"),
        ("plain text, accents é and emoji 🎉\n".encode(), "text/plain"),
        ("cut in the middle: é".encode()[:-1], "text/plain"),
        (b"binary\x00with\x00zeros", OCTET_STREAM),
        (b"\xff\xfe\xfa\x80garbage", OCTET_STREAM),
        (b"", "text/plain"),
    ],
)
def test_types_are_read_from_bytes(head: bytes, expected: str) -> None:
    assert sniff(head) == expected


def test_what_a_browser_could_run_is_served_as_bytes() -> None:
    for dangerous in (
        "text/html",
        "image/svg+xml",
        "application/xml",
        "application/x-msdownload",
        "application/x-executable",
        "text/x-shellscript",
        "application/wasm",
    ):
        assert is_dangerous(dangerous) and served_type(dangerous) == OCTET_STREAM
    for inert in ("image/png", "text/plain", "application/pdf", "video/mp4", "application/zip"):
        assert not is_dangerous(inert) and served_type(inert) == inert


def test_what_claims_to_be_an_image() -> None:
    assert claims_image("cat.PNG", None)
    assert claims_image("cat", "image/jpeg; q=1")
    assert not claims_image("notes.txt", "text/plain")
    assert not claims_image("drawing.svg", "image/svg+xml")  # not a raster image: no preview promised
