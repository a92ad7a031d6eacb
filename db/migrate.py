"""`beep db upgrade`: apply the directory stream once and the shard stream to every logical shard."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from db.base import SHARD_SCHEMA
from db.engines import Database

log = logging.getLogger("beep.db")
MIGRATIONS = Path(__file__).parent / "migrations"


def _alembic_config(stream: str, connection: Connection, version_schema: str | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS / stream))
    config.attributes["connection"] = connection
    config.attributes["version_table_schema"] = version_schema
    return config


def _upgrade(connection: Connection, stream: str, version_schema: str | None, revision: str) -> None:
    command.upgrade(_alembic_config(stream, connection, version_schema), revision)


async def upgrade(database: Database, revision: str = "head") -> int:
    """Bring the directory and every shard to `revision`; returns how many shards were visited."""
    _ensure_sqlite_dirs([database.directory_url, *database.shard_map.physical_urls()])
    async with database.directory_engine.begin() as conn:
        await conn.run_sync(_upgrade, "directory", None, revision)
    for location in database.shard_map.locations:
        engine = database.engine(location.url)
        async with engine.begin() as conn:
            if location.schema is not None:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{location.schema}"'))
            translated = await conn.execution_options(schema_translate_map={SHARD_SCHEMA: location.schema})
            await translated.run_sync(_upgrade, "shard", location.schema, revision)
        log.debug("shard migrated", extra={"shard": location.shard})
    return len(database.shard_map.locations)


def _ensure_sqlite_dirs(urls: list[Any]) -> None:
    for url in urls:
        if url.startswith("sqlite") and ":///" in url:
            path = url.split(":///", 1)[1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
