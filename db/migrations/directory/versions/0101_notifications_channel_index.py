"""Notifications by server and channel: a deleted channel (a folder's channels too) takes its
notifications along, as a deleted server does. The composite index serves both deletions, so it replaces
d0100's index on the server alone.

Revision ID: d0101
Revises: d0100
"""

from alembic import op

revision = "d0101"
down_revision = "d0100"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_notifications_server_id_channel_id", "notifications", ["server_id", "channel_id"])
    op.drop_index("ix_notifications_server_id", table_name="notifications")


def downgrade() -> None:
    op.create_index("ix_notifications_server_id", "notifications", ["server_id"])
    op.drop_index("ix_notifications_server_id_channel_id", table_name="notifications")
