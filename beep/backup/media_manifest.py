"""The media store's manifest: which stored objects a backup's rows may point at, and their sizes.

Files themselves are not copied into a backup: the object store is the place to keep them durable (S3
versioning and replication, or the volume's own snapshots). The manifest lets a restore say which
objects its rows expect and which of them the target store lacks.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from subgraphs.kernel.settings import Settings

_META_SUFFIX = ".meta.json"  # media.storage's sidecar: {"key", "size", "sha256", "content_type"}


async def objects(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    if settings.media_storage == "s3":
        from beep.backup.destinations import s3_client

        prefix = settings.s3_prefix.strip("/") + "/" if settings.s3_prefix.strip("/") else ""
        async with s3_client(settings, backups=False) as client:
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=settings.s3_bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield {"key": item["Key"][len(prefix) :], "size": int(item["Size"])}
        return
    for item in await asyncio.to_thread(_on_disk, Path(settings.resolved_media_dir)):
        yield item


def _on_disk(root: Path) -> list[dict[str, Any]]:
    if not root.is_dir():
        return []
    found = []
    for meta in sorted(root.rglob(f"*{_META_SUFFIX}")):
        data_file = meta.with_name(meta.name.removesuffix(_META_SUFFIX))
        if not data_file.is_file():
            continue  # a removal in progress: the data file goes first
        raw = json.loads(meta.read_bytes())
        found.append({"key": raw["key"], "size": int(raw["size"]), "sha256": raw["sha256"]})
    return found
