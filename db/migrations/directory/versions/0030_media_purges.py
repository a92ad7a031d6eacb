"""Directory: purge jobs for attachment files whose rows are being deleted
(kernel/tenancy/attachment_files.py).

Revision ID: d0030
Revises: d0021
"""

from alembic import op
import sqlalchemy as sa

revision = "d0030"
down_revision = "d0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media_purges",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=True),
        sa.Column("keys", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index("ix_media_purges_created_at", "media_purges", ["created_at"])


def downgrade() -> None:
    op.drop_table("media_purges")
