"""Notifications (persisted, per user) and notification preferences (setting and snooze per scope).

Revision ID: d0060
Revises: d0050
"""

from alembic import op
import sqlalchemy as sa

revision = "d0060"
down_revision = "d0050"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column(
            "user_id",
            sa.BigInteger(),
            sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_notifications_user_id_users"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("server_id", sa.BigInteger(), nullable=True),
        sa.Column("channel_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("pushed", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.UniqueConstraint("source_id", "user_id", name="uq_notifications_source_user"),
    )
    op.create_index("ix_notifications_user_id_read_id", "notifications", ["user_id", "read", "id"])
    op.create_index("ix_notifications_user_id_id", "notifications", ["user_id", "id"])
    op.create_table(
        "notification_preferences",
        sa.Column(
            "user_id",
            sa.BigInteger(),
            sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_notification_preferences_user_id_users"),
            primary_key=True,
        ),
        sa.Column("scope_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("server_id", sa.BigInteger(), nullable=True),
        sa.Column("level", sa.String(16), nullable=True),
        sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_notification_preferences_server_id_level", "notification_preferences", ["server_id", "level"]
    )


def downgrade() -> None:
    op.drop_table("notification_preferences")
    op.drop_table("notifications")
