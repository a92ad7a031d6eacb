"""Shared Alembic environment for both migration streams (directory and shard).

`db.migrate` hands in a live connection (with the shard's schema translation) and the version table's
schema; running `alembic` by hand is not supported because one stream is applied to many shards.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=context.config.attributes.get("target_metadata"),
    version_table_schema=context.config.attributes.get("version_table_schema"),
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
