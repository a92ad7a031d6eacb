"""What a file is, read from its first bytes (never its name or the client's content type).

`sniff` recognises common formats by their magic numbers (images, audio, video, archives, PDF,
executables) and tells markup (HTML, SVG, XML) and plain UTF-8 text apart from other bytes. `served_type`
is the type a download is answered with: the detected type for what browsers treat as inert data, and
`application/octet-stream` for anything a browser could run or render as a document (HTML, SVG, XML,
JavaScript, executables) — those are always downloads (media/app.py adds `attachment` and `nosniff`).
"""

from __future__ import annotations

import re

OCTET_STREAM = "application/octet-stream"
HEAD_BYTES = 4096  # how much of a file `sniff` looks at

RASTER_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

# (magic, offset, content type): checked in order, the first match wins.
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"BM", 0, "image/bmp"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
    (b"\x00\x00\x01\x00", 0, "image/vnd.microsoft.icon"),
    (b"%PDF-", 0, "application/pdf"),
    (b"PK\x03\x04", 0, "application/zip"),
    (b"PK\x05\x06", 0, "application/zip"),
    (b"\x1f\x8b", 0, "application/gzip"),
    (b"7z\xbc\xaf\x27\x1c", 0, "application/x-7z-compressed"),
    (b"Rar!\x1a\x07", 0, "application/vnd.rar"),
    (b"BZh", 0, "application/x-bzip2"),
    (b"\xfd7zXZ\x00", 0, "application/x-xz"),
    (b"OggS", 0, "audio/ogg"),
    (b"fLaC", 0, "audio/flac"),
    (b"ID3", 0, "audio/mpeg"),
    (b"\x1aE\xdf\xa3", 0, "video/webm"),
    (b"\x7fELF", 0, "application/x-executable"),
    (b"MZ", 0, "application/x-msdownload"),
    (b"\xcf\xfa\xed\xfe", 0, "application/x-mach-binary"),
    (b"\xce\xfa\xed\xfe", 0, "application/x-mach-binary"),
    (b"\xca\xfe\xba\xbe", 0, "application/x-mach-binary"),  # also Java classes: executable either way
    (b"\x00asm", 0, "application/wasm"),
    (b"#!", 0, "text/x-shellscript"),
)
_FTYP_BRANDS = {
    b"qt  ": "video/quicktime",
    b"M4A ": "audio/mp4",
    b"avif": "image/avif",
    b"heic": "image/heic",
}

# Types a browser could execute or render as an active document; never served as themselves.
DANGEROUS = frozenset(
    {
        "text/html",
        "image/svg+xml",
        "application/xml",
        "text/xml",
        "application/xhtml+xml",
        "text/javascript",
        "application/wasm",
        "application/x-executable",
        "application/x-msdownload",
        "application/x-mach-binary",
        "text/x-shellscript",
    }
)

_MARKUP_START = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*<", re.DOTALL)
_HTML_TAGS = re.compile(
    rb"<(?:!doctype\s+html|html|head|body|script|iframe|frameset|style|title|meta|link|a\s|div|img|"
    rb"form|object|embed|table|p>|br|h1)",
    re.IGNORECASE,
)
_SVG = re.compile(rb"<svg[\s>]", re.IGNORECASE)
_XML = re.compile(rb"^(?:\xef\xbb\xbf)?\s*<\?xml", re.IGNORECASE)


def sniff(head: bytes) -> str:
    """The content type of a file beginning with `head` (pass at least its first HEAD_BYTES bytes)."""
    for magic, offset, content_type in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return content_type
    if len(head) >= 12 and head[:4] == b"RIFF":
        kind = head[8:12]
        if kind == b"WEBP" and head[12:15] == b"VP8":
            return "image/webp"
        if kind == b"WAVE":
            return "audio/wav"
        if kind == b"AVI ":
            return "video/x-msvideo"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], "video/mp4")
    if head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    return _sniff_text(head)


def _sniff_text(head: bytes) -> str:
    lowered = head.lower()
    # Markup is checked on the bytes whatever their encoding claims: a browser sniffing them would.
    if _SVG.search(lowered) and (_MARKUP_START.match(head) or _XML.match(head)):
        return "image/svg+xml"
    if _MARKUP_START.match(head) and _HTML_TAGS.search(lowered):
        return "text/html"
    if _XML.match(head):
        return "application/xml"
    if b"\x00" in head:
        return OCTET_STREAM
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut at the end of the sample is still text.
        if error.start < len(head) - 3:
            return OCTET_STREAM
    if _HTML_TAGS.search(lowered[:1024]):
        return "text/html"  # text that a sniffing browser would take for HTML: treated as HTML
    return "text/plain"


def is_dangerous(content_type: str) -> bool:
    return content_type in DANGEROUS


def served_type(content_type: str) -> str:
    """The Content-Type a download of this detected type is answered with."""
    return OCTET_STREAM if is_dangerous(content_type) else content_type


_IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".webp"}


def claims_image(filename: str, declared_type: str | None) -> bool:
    """Whether the client presents the file as a picture (by its declared type or its name's ending)."""
    declared = (declared_type or "").split(";", 1)[0].strip().lower()
    name = filename.lower()
    return declared in RASTER_IMAGES or any(name.endswith(ext) for ext in _IMAGE_EXTENSIONS)
