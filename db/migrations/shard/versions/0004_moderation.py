"""Moderation: bans, and members' timeouts.

Revision ID: s0004
Revises: s0003
"""

from alembic import op
import sqlalchemy as sa

revision = "s0004"
down_revision = "s0003"
branch_labels = None
depends_on = None

S = "shard"
NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "bans",
        sa.Column(
            "server_id",
            sa.BigInteger(),
            sa.ForeignKey(f"{S}.servers.id", ondelete="CASCADE", name="fk_bans_server_id_servers"),
            primary_key=True,
        ),
        sa.Column("user_id", sa.BigInteger(), primary_key=True),
        sa.Column("reason", sa.String(512), nullable=True),
        sa.Column("banned_by", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        schema=S,
    )
    # ALTER names its table by string, which the schema translation does not reach: use the shard's real
    # schema (the version table's; None on SQLite, where the file is the shard).
    op.add_column(
        "members",
        sa.Column("timeout_until", sa.DateTime(timezone=True), nullable=True),
        schema=op.get_context().version_table_schema,
    )


def downgrade() -> None:
    op.drop_column("members", "timeout_until", schema=op.get_context().version_table_schema)
    op.drop_table("bans", schema=S)
