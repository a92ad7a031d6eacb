"""Shard: storage keys of a server's picture and banner (media/; NULL when unset).

Revision ID: s0020
Revises: s0008
"""

from alembic import op
import sqlalchemy as sa

revision = "s0020"
down_revision = "s0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ALTER names its table by string: use the shard's real schema (None on SQLite).
    schema = op.get_context().version_table_schema
    op.add_column("servers", sa.Column("picture_key", sa.String(256), nullable=True), schema=schema)
    op.add_column("servers", sa.Column("banner_key", sa.String(256), nullable=True), schema=schema)


def downgrade() -> None:
    schema = op.get_context().version_table_schema
    op.drop_column("servers", "banner_key", schema=schema)
    op.drop_column("servers", "picture_key", schema=schema)
