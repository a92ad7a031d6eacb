"""Directory: which servers each user belongs to (an index of the shards' member rows).

A user's servers live on many shards; listing them ("my servers"), fanning presence out to them and
removing a user everywhere all start from this index instead of asking every shard.

Revision ID: d0003
Revises: d0002
"""

from alembic import op
import sqlalchemy as sa

revision = "d0003"
down_revision = "d0002"
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "memberships",
        sa.Column("user_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column(
            "server_id",
            sa.BigInteger(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name="fk_memberships_server_id_tenants"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("joined_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    )
    op.create_index("ix_memberships_server_id", "memberships", ["server_id"])


def downgrade() -> None:
    op.drop_table("memberships")
