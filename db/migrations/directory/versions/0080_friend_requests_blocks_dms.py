"""Directory: friend requests (one pending per pair), blocks, and the direct conversation of a pair of
friends (a tenant of kind DM; its tenant row cascades to it).

Revision ID: d0080
Revises: d0060
"""

from alembic import op
import sqlalchemy as sa

revision = "d0080"
down_revision = "d0060"
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "friend_requests",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("sender_id", sa.BigInteger(), nullable=False),
        sa.Column("recipient_id", sa.BigInteger(), nullable=False),
        sa.Column("user_low_id", sa.BigInteger(), nullable=False),
        sa.Column("user_high_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint("user_low_id < user_high_id", name="ck_friend_requests_ordered_pair"),
        sa.UniqueConstraint(
            "user_low_id", "user_high_id", name="uq_friend_requests_user_low_id_user_high_id"
        ),
    )
    op.create_index("ix_friend_requests_sender_id", "friend_requests", ["sender_id"])
    op.create_index("ix_friend_requests_recipient_id", "friend_requests", ["recipient_id"])
    op.create_table(
        "user_blocks",
        sa.Column("blocker_id", sa.BigInteger(), primary_key=True),
        sa.Column("blocked_id", sa.BigInteger(), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    )
    op.create_index("ix_user_blocks_blocked_id", "user_blocks", ["blocked_id"])
    op.create_table(
        "direct_conversations",
        sa.Column("user_low_id", sa.BigInteger(), primary_key=True),
        sa.Column("user_high_id", sa.BigInteger(), primary_key=True),
        sa.Column(
            "server_id",
            sa.BigInteger(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name="fk_direct_conversations_server_id_tenants"),
            nullable=False,
        ),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint("user_low_id < user_high_id", name="ck_direct_conversations_ordered_pair"),
        sa.UniqueConstraint("server_id", name="uq_direct_conversations_server_id"),
    )
    op.create_index("ix_direct_conversations_user_high_id", "direct_conversations", ["user_high_id"])


def downgrade() -> None:
    op.drop_table("direct_conversations")
    op.drop_table("user_blocks")
    op.drop_table("friend_requests")
