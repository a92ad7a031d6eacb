"""The directory's transactional outbox: user-level events (same tables as each shard's, see s0021).

Revision ID: d0021
Revises: d0020
"""

from alembic import op
import sqlalchemy as sa

revision = "d0021"
down_revision = "d0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_outbox_topic_position", "outbox", ["topic", "position"])
    op.create_index("ix_outbox_position", "outbox", ["position"], unique=True)
    op.create_table(
        "outbox_relay",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("next_position", sa.BigInteger(), nullable=False),
        sa.Column("published_through", sa.BigInteger(), nullable=False),
        sa.Column("pruned_through", sa.BigInteger(), nullable=False),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_expires", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "outbox_consumers",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("through", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    for table in ("outbox_consumers", "outbox_relay", "outbox"):
        op.drop_table(table)
