"""Directory: in-app invitations (a member invites a user directly; the user accepts or declines).

Global, like invite codes: the invitee lists theirs across every shard.

Revision ID: d0005
Revises: d0004
"""

from alembic import op
import sqlalchemy as sa

revision = "d0005"
down_revision = "d0004"
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "server_invitations",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column(
            "server_id",
            sa.BigInteger(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name="fk_server_invitations_server_id_tenants"),
            nullable=False,
        ),
        sa.Column("inviter_id", sa.BigInteger(), nullable=False),
        sa.Column("invitee_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.UniqueConstraint("server_id", "invitee_id", name="uq_server_invitations_server_id_invitee_id"),
    )
    op.create_index("ix_server_invitations_invitee_id", "server_invitations", ["invitee_id", "id"])


def downgrade() -> None:
    op.drop_table("server_invitations")
