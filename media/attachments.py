"""Message attachments: checked, typed from their bytes, stored with a thumbnail, linked, deleted.

An attachment is kept byte for byte (it is the sender's file, not a picture of it), under a key in its
channel's scope (`t<server>/c<channel>`), so deleting a channel or a server removes its files by scope.
Its content type is read from its bytes (media/sniff.py); what a browser could run (HTML, SVG, XML,
scripts, executables) is stored and served as `application/octet-stream`, always as a download. A raster
image (PNG, JPEG, GIF, WebP) also gets its width and height and a WebP thumbnail within 320x320, made by
the picture pipeline (media/images.py: header checked before decoding, first frame, metadata dropped);
an image that pipeline refuses is still attached, as a file without a preview.
"""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass

from PIL import Image

from media.errors import FileTooLarge, MediaError, MediaErrorCode
from media.images import PictureKind, process_picture_async
from media.mime import may_be_inline
from media.signing import Disposition, UrlSigner, safe_filename
from media.sniff import HEAD_BYTES, RASTER_IMAGES, claims_image, served_type, sniff
from media.storage import FileStorage

log = logging.getLogger("beep.media.attachments")

MiB = 1024 * 1024
MAX_FILES = 10  # per message
DEFAULT_MAX_BYTES = 20 * MiB  # per message, all files together (BEEP_ATTACHMENT_MAX_BYTES)
URL_ALIGN_SECONDS = 60  # the same URL for up to a minute, so a page of history caches
MAX_FILENAME = 255


class EmptyFile(MediaError):
    code = MediaErrorCode.EMPTY_FILE

    def __init__(self) -> None:
        super().__init__("The file is empty.")


class ContentTypeMismatch(MediaError):
    code = MediaErrorCode.CONTENT_TYPE_MISMATCH

    def __init__(self) -> None:
        super().__init__("The file is presented as an image but its content is not one.")


@dataclass(frozen=True, slots=True)
class StoredAttachment:
    key: str
    thumbnail_key: str | None
    filename: str
    size: int
    content_type: str  # as detected from the bytes (shown to clients)
    width: int | None
    height: int | None


def attachment_scope(server_id: int, channel_id: int) -> str:
    return f"{channel_scope_prefix(server_id)}/c{channel_id}"


def channel_scope_prefix(server_id: int) -> str:
    """The tenant's scope: pictures live right in it, attachments one level down per channel."""
    return f"t{server_id}"


def clean_filename(name: str | None) -> str:
    cleaned = safe_filename(name or "")[:MAX_FILENAME]
    return cleaned or "file"


class Attachments:
    def __init__(
        self, storage: FileStorage, signer: UrlSigner, *, url_ttl_seconds: int, max_bytes: int
    ) -> None:
        self.storage = storage
        self.signer = signer
        self.url_ttl_seconds = url_ttl_seconds
        self.max_bytes = max_bytes

    async def store(
        self, scope: str, data: bytes, filename: str | None, declared_type: str | None
    ) -> StoredAttachment:
        """Check and keep one file; `MediaError` (with its code) when it is refused. Nothing is kept then."""
        if not data:
            raise EmptyFile()
        if len(data) > self.max_bytes:
            raise FileTooLarge(self.max_bytes)
        name = clean_filename(filename)
        detected = sniff(data[:HEAD_BYTES])
        if claims_image(name, declared_type) and detected not in RASTER_IMAGES:
            raise ContentTypeMismatch()
        width = height = None
        thumbnail: bytes | None = None
        if detected in RASTER_IMAGES:
            try:
                preview = await process_picture_async(data, PictureKind.ATTACHMENT_THUMBNAIL)
                width, height = await asyncio.to_thread(_upright_size, data)
                thumbnail = preview.data
            except MediaError:
                log.info("an attached image has no preview", extra={"content_type": detected})
        stored = await self.storage.put(
            scope, data, content_type=served_type(detected), max_size=self.max_bytes
        )
        thumbnail_key = None
        if thumbnail is not None:
            try:
                thumbnail_key = (
                    await self.storage.put(
                        scope, thumbnail, content_type="image/webp", max_size=self.max_bytes
                    )
                ).key
            except BaseException:
                await self.delete(stored.key)
                raise
        return StoredAttachment(
            key=stored.key,
            thumbnail_key=thumbnail_key,
            filename=name,
            size=stored.size,
            content_type=detected,
            width=width,
            height=height,
        )

    def url(self, key: str, filename: str, content_type: str) -> str:
        """A download URL, valid `url_ttl_seconds` (rounded up to the minute): inline for raster images,
        a download with the file's name for everything else."""
        disposition: Disposition = "inline" if may_be_inline(content_type) else "attachment"
        return self.signer.sign(
            key, self.url_ttl_seconds, disposition, filename=filename, align=URL_ALIGN_SECONDS
        )

    def thumbnail_url(self, key: str | None) -> str | None:
        if not key:
            return None
        return self.signer.sign(key, self.url_ttl_seconds, "inline", align=URL_ALIGN_SECONDS)

    async def delete(self, *keys: str | None) -> bool:
        """Delete objects; False if any could not be (the caller keeps its purge job for a retry)."""
        ok = True
        for key in filter(None, keys):
            try:
                await self.storage.delete(key)
            except Exception:
                log.warning("could not delete an attachment", exc_info=True, extra={"key": key})
                ok = False
        return ok


def _upright_size(data: bytes) -> tuple[int, int]:
    """The image's size as displayed (EXIF orientations 5-8 swap width and height); header only."""
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)
