"""Directory: bot accounts. A bot is a user flagged `bot`, created in one server by a manager, with a
bot token (only its SHA-256 is kept; NULL once revoked) exchanged for short-lived access tokens.

Revision ID: d0050
Revises: d0030
"""

from alembic import op
import sqlalchemy as sa

revision = "d0050"
down_revision = "d0030"
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("bot", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "bots",
        sa.Column(
            "user_id",
            sa.BigInteger(),
            sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_bots_user_id_users"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column(
            "server_id",
            sa.BigInteger(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name="fk_bots_server_id_tenants"),
            nullable=False,
        ),
        sa.Column("creator_id", sa.BigInteger(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    )
    op.create_index("ix_bots_server_id", "bots", ["server_id"])


def downgrade() -> None:
    op.drop_table("bots")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("bot")
