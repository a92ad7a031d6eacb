"""Notifications by server: a deleted server (a direct conversation erased with its friendship, too)
takes its notifications along, found through this index.

Revision ID: d0100
Revises: d0080
"""

from alembic import op

revision = "d0100"
down_revision = "d0095"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_notifications_server_id", "notifications", ["server_id"])


def downgrade() -> None:
    op.drop_index("ix_notifications_server_id", table_name="notifications")
