"""The Alembic environment both migration streams (directory and shard) run.

`db.migrate` hands in a live connection (already translated to the shard's schema) and the version
table's schema; running `alembic` by hand is not supported because one stream is applied to many shards.
"""

from __future__ import annotations

from alembic import context


def run_migrations() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=context.config.attributes.get("target_metadata"),
        version_table_schema=context.config.attributes.get("version_table_schema"),
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
