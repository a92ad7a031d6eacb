"""GraphQL types of message attachments."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from media.attachments import DEFAULT_MAX_BYTES, MAX_FILES
from subgraphs.kernel.errors import ForbiddenError, NotFoundError, ValidationError
from subgraphs.messages.models import AttachmentRow

LIMITS = (
    f"At most {MAX_FILES} files per message, together at most BEEP_ATTACHMENT_MAX_BYTES "
    f"({DEFAULT_MAX_BYTES // (1024 * 1024)} MiB by default); each non-empty. The type is read from the "
    "bytes; a file presented as an image must be one."
)


@strawberry.type(
    description="A file of a message. Its URLs are short-lived signed links (5 minutes by default): "
    "ask again for fresh ones rather than storing them."
)
class Attachment:
    id: strawberry.ID
    filename: str
    size: int = strawberry.field(description="Bytes.")
    content_type: str = strawberry.field(
        description="Detected from the file's bytes (never its name); HTML, SVG, scripts and executables "
        "are still downloads, never shown inline."
    )
    width: int | None = strawberry.field(description="Pixels, for images.")
    height: int | None = strawberry.field(description="Pixels, for images.")
    key: strawberry.Private[str]
    thumbnail_key: strawberry.Private[str | None]

    @strawberry.field(description="Download URL (inline for PNG/JPEG/GIF/WebP, else a download).")
    def url(self, info: Info[Any, None]) -> str:
        files = info.context.runtime.attachments
        return str(files.url(self.key, self.filename, self.content_type))

    @strawberry.field(description="A WebP preview within 320x320, for images; null otherwise.")
    def thumbnail_url(self, info: Info[Any, None]) -> str | None:
        url = info.context.runtime.attachments.thumbnail_url(self.thumbnail_key)
        return str(url) if url else None

    @classmethod
    def from_row(cls, row: AttachmentRow) -> Attachment:
        return cls(
            id=strawberry.ID(str(row.id)),
            filename=row.filename,
            size=row.size,
            content_type=row.content_type,
            width=row.width,
            height=row.height,
            key=row.storage_key,
            thumbnail_key=row.thumbnail_key,
        )


UploadAttachmentResult = Annotated[
    Attachment | ValidationError | NotFoundError | ForbiddenError, strawberry.union("UploadAttachmentResult")
]
