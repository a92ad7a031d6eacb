"""Messages: whether a message pings everyone (@everyone/@here written by someone allowed to).

Revision ID: s0007
Revises: s0006
"""

from alembic import op
import sqlalchemy as sa

revision = "s0007"
down_revision = "s0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ALTER names its table by string, which the schema translation does not reach (see s0004).
    op.add_column(
        "messages",
        sa.Column("mention_everyone", sa.Boolean(), server_default=sa.false(), nullable=False),
        schema=op.get_context().version_table_schema,
    )


def downgrade() -> None:
    op.drop_column("messages", "mention_everyone", schema=op.get_context().version_table_schema)
