"""Pictures (profile pictures, banners, server pictures): checked, re-encoded, stored, linked, deleted.

What the subgraphs use: `store` runs an upload through the pipeline (media/images.py) and keeps the
result under a new unguessable key; `url` mints a short-lived signed download URL for a key; `delete`
removes objects once the rows no longer name them. Storage is any `FileStorage` (local disk now; an S3
backend implements the same protocol).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.applications import Starlette

from media.app import create_media_app
from media.errors import MediaError
from media.images import PictureKind, process_picture_async
from media.signing import UrlSigner, generate_secret
from media.storage import FileStorage

log = logging.getLogger("beep.media")
URL_ALIGN_SECONDS = 300  # a picture's URL stays the same for up to 5 minutes: cacheable


class Pictures:
    def __init__(self, storage: FileStorage, signer: UrlSigner, *, url_ttl_seconds: int) -> None:
        self.storage = storage
        self.signer = signer
        self._ttl = url_ttl_seconds

    async def store(self, kind: PictureKind, scope: str, data: bytes) -> str:
        """The key of the re-encoded picture; a `MediaError` (with its code) when it is refused."""
        picture = await process_picture_async(data, kind)
        stored = await self.storage.put(scope, picture.data, content_type=picture.content_type)
        return stored.key

    def url(self, key: str | None) -> str | None:
        if not key:
            return None
        return self.signer.sign(key, self._ttl, "inline", align=URL_ALIGN_SECONDS)

    async def delete(self, *keys: str | None) -> None:
        """Best effort: a file left behind is garbage, never a broken profile (rows changed first)."""
        for key in filter(None, keys):
            try:
                await self.storage.delete(key)
            except (MediaError, OSError):
                log.warning("could not delete a stored picture", exc_info=True, extra={"key": key})

    def app(self, is_live: Callable[[str], Awaitable[bool]] | None = None) -> Starlette:
        return create_media_app(self.storage, self.signer, is_live)


def load_or_create_signing_keys(spec: str, key_file: Path) -> str:
    """The configured key spec, or one kept in `key_file` (created once; replicas on one disk share it)."""
    if spec.strip():
        return spec
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = key_file.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"k1:{generate_secret()}\n")
        try:
            os.link(tmp, key_file)  # never replaces a key another process wrote first
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return key_file.read_text().strip()
