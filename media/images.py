"""The picture pipeline: what an uploaded image must be, and what is kept of it.

An upload is trusted for nothing: its type is read from its first bytes (never its name or the client's
content type); only PNG, JPEG, GIF and WebP are accepted; the header's dimensions are checked before any
pixel is decoded (decompression bombs stop there); the first frame is decoded, turned upright by its EXIF
orientation, shrunk to fit the kind's bounds and re-encoded as WebP. Nothing of the original file
survives: no EXIF, GPS, ICC profile, comments or trailing bytes, no second frame.
"""

from __future__ import annotations

import asyncio
import enum
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps

from media.errors import FileTooLarge, MediaError, MediaErrorCode

MiB = 1024 * 1024
# Header dimensions accepted before decoding: 40 megapixels (a 12,000 x 3,333 panorama, a 7,300 x 5,500
# photo) and 12,000 pixels a side. Decoding one frame of that needs at most ~160 MB as RGBA.
MAX_SOURCE_PIXELS = 40_000_000
MAX_SOURCE_SIDE = 12_000
OUTPUT_TYPE = "image/webp"
WEBP_QUALITY = 85

# Only these four, recognised by their magic numbers.
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
)
_PIL_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}


class PictureKind(enum.Enum):
    """Each kind of picture with its upload limit and the box it is shrunk to fit."""

    AVATAR = ("avatar", 8 * MiB, (512, 512))
    BANNER = ("banner", 10 * MiB, (1920, 1080))
    SERVER_PICTURE = ("server-picture", 8 * MiB, (512, 512))
    SERVER_BANNER = ("server-banner", 10 * MiB, (1920, 1080))
    # A message attachment's preview (media/attachments.py checks the upload's own size limit first).
    ATTACHMENT_THUMBNAIL = ("attachment-thumbnail", 1024 * MiB, (320, 320))

    def __init__(self, slug: str, max_bytes: int, bounds: tuple[int, int]) -> None:
        self.slug = slug
        self.max_bytes = max_bytes
        self.bounds = bounds

    def describe(self) -> str:
        """For schema descriptions: the rules a client must follow."""
        width, height = self.bounds
        return (
            f"PNG, JPEG, GIF or WebP (recognised by content), at most {self.max_bytes // MiB} MiB and "
            f"{MAX_SOURCE_SIDE:,} pixels a side; stored as WebP within {width}x{height}, metadata removed, "
            "first frame only."
        )


class UnsupportedImageType(MediaError):
    code = MediaErrorCode.UNSUPPORTED_IMAGE_TYPE

    def __init__(self) -> None:
        super().__init__("Upload a PNG, JPEG, GIF or WebP image.")


class ImageUndecodable(MediaError):
    code = MediaErrorCode.IMAGE_UNDECODABLE

    def __init__(self) -> None:
        super().__init__("The image could not be read.")


class ImageTooLarge(MediaError):
    """Dimensions past the limits (a decompression bomb or simply too big): refused before decoding."""

    code = MediaErrorCode.IMAGE_DIMENSIONS_TOO_LARGE

    def __init__(self) -> None:
        super().__init__(
            f"The image is too large: at most {MAX_SOURCE_SIDE} pixels a side and "
            f"{MAX_SOURCE_PIXELS // 1_000_000} megapixels."
        )


@dataclass(frozen=True, slots=True)
class Picture:
    data: bytes
    content_type: str
    width: int
    height: int


def sniff_image_type(head: bytes) -> str | None:
    """The image type the bytes begin with, among those accepted; None for anything else."""
    for magic, offset, content_type in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return content_type
    if len(head) >= 16 and head[:4] == b"RIFF" and head[8:12] == b"WEBP" and head[12:15] == b"VP8":
        return "image/webp"
    return None


def process_picture(data: bytes, kind: PictureKind) -> Picture:
    """Check and re-encode an upload (CPU-bound: see `process_picture_async`)."""
    if len(data) > kind.max_bytes:
        raise FileTooLarge(kind.max_bytes)
    content_type = sniff_image_type(data[:32])
    if content_type is None:
        raise UnsupportedImageType()
    with warnings.catch_warnings():
        # Pillow warns past its own pixel limit and raises past twice that; ours is stricter and
        # is checked first, but a warning must never let a bomb through.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[content_type]]) as source:
                width, height = source.size
                if (
                    width < 1
                    or height < 1
                    or max(width, height) > MAX_SOURCE_SIDE
                    or width * height > MAX_SOURCE_PIXELS
                ):
                    raise ImageTooLarge()
                source.seek(0)  # the first frame of an animation
                source.load()
                image = _upright(source)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageTooLarge() from None
        except MediaError:
            raise
        except Exception:  # Pillow raises many types for broken files (OSError, SyntaxError, ValueError...)
            raise ImageUndecodable() from None
    image.thumbnail(kind.bounds, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    # A fresh image has no info: nothing (EXIF, XMP, ICC, comments) is carried over.
    image.save(out, format="WEBP", quality=WEBP_QUALITY, method=4)
    return Picture(out.getvalue(), OUTPUT_TYPE, image.width, image.height)


def _upright(source: Image.Image) -> Image.Image:
    """The frame as RGB(A) pixels only, rotated as its EXIF orientation says."""
    rotated = ImageOps.exif_transpose(source) or source
    has_alpha = rotated.mode in ("RGBA", "LA", "PA") or (
        rotated.mode == "P" and "transparency" in rotated.info
    )
    converted = rotated.convert("RGBA" if has_alpha else "RGB")
    clean = Image.new(converted.mode, converted.size)
    clean.paste(converted)
    return clean


_decoding = asyncio.Semaphore(2)  # decoding is CPU and memory heavy: two at a time per process


async def process_picture_async(data: bytes, kind: PictureKind) -> Picture:
    async with _decoding:
        return await asyncio.to_thread(process_picture, data, kind)
