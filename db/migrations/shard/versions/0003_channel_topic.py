"""Channel topics.

Revision ID: s0003
Revises: s0002
"""

from alembic import op
import sqlalchemy as sa

revision = "s0003"
down_revision = "s0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ALTER names its table by string, which the schema translation does not reach: use the shard's real
    # schema (the version table's; None on SQLite, where the file is the shard).
    op.add_column(
        "channels",
        sa.Column("topic", sa.String(1024), nullable=True),
        schema=op.get_context().version_table_schema,
    )


def downgrade() -> None:
    op.drop_column("channels", "topic", schema=op.get_context().version_table_schema)
