"""Directory: group conversations (a tenant of kind GROUP_DM with 2 to 10 participants; its tenant row
cascades to it). Participants are the tenant's memberships; the name and the owner live here.

Revision ID: d0095
Revises: d0080
"""

from alembic import op
import sqlalchemy as sa

revision = "d0095"
down_revision = "d0080"
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "group_conversations",
        sa.Column(
            "server_id",
            sa.BigInteger(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name="fk_group_conversations_server_id_tenants"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("group_conversations")
