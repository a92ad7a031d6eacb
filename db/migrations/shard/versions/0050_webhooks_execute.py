"""Shard: webhooks that post — an avatar, a tombstone for deleted ones (a token holder gets 404, not
401), and messages that carry who posted them (a webhook's name and avatar, or the caller's overrides) and
Discord-style embeds.

Revision ID: s0050
Revises: s0070
"""

from alembic import op
import sqlalchemy as sa

revision = "s0050"
down_revision = "s0070"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ALTER names its table by string: use the shard's real schema (None on SQLite).
    schema = op.get_context().version_table_schema
    op.add_column("webhooks", sa.Column("avatar_url", sa.String(2048), nullable=True), schema=schema)
    op.add_column(
        "webhooks", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True), schema=schema
    )
    op.add_column("messages", sa.Column("webhook_id", sa.BigInteger(), nullable=True), schema=schema)
    op.add_column("messages", sa.Column("author_name", sa.String(80), nullable=True), schema=schema)
    op.add_column("messages", sa.Column("author_avatar_url", sa.String(2048), nullable=True), schema=schema)
    op.add_column("messages", sa.Column("embeds", sa.Text(), nullable=True), schema=schema)


def downgrade() -> None:
    schema = op.get_context().version_table_schema
    for column in ("embeds", "author_avatar_url", "author_name", "webhook_id"):
        op.drop_column("messages", column, schema=schema)
    op.drop_column("webhooks", "deleted_at", schema=schema)
    op.drop_column("webhooks", "avatar_url", schema=schema)
