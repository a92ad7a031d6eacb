"""Directory: invite codes (global, so a code finds its server on whatever shard holds it).

Revision ID: d0002
Revises: d0001
"""

from alembic import op
import sqlalchemy as sa

revision = "d0002"
down_revision = "d0001"
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "invites",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column(
            "server_id",
            sa.BigInteger(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name="fk_invites_server_id_tenants"),
            nullable=False,
        ),
        sa.Column("channel_id", sa.BigInteger(), nullable=True),
        sa.Column("creator_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_uses", sa.BigInteger(), nullable=False),
        sa.Column("uses", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("max_uses >= 0 AND max_uses <= 100", name="ck_invites_max_uses_range"),
        sa.CheckConstraint("uses >= 0", name="ck_invites_uses_not_negative"),
    )
    op.create_index("ix_invites_server_id", "invites", ["server_id"])


def downgrade() -> None:
    op.drop_table("invites")
