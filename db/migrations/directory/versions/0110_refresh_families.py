"""Refresh-token families: every token a sign-in's rotations produce shares the first one's id, so a
replayed (already rotated) token can end the whole session (OAuth 2.0 Security BCP, reuse detection).
Existing sessions become families of their own.

Revision ID: d0110
Revises: d0101
"""

import sqlalchemy as sa
from alembic import op

revision = "d0110"
down_revision = "d0101"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("refresh_sessions", sa.Column("family_id", sa.BigInteger(), nullable=True))
    op.execute("UPDATE refresh_sessions SET family_id = id")
    op.create_index("ix_refresh_sessions_family_id", "refresh_sessions", ["family_id"])


def downgrade() -> None:
    op.drop_index("ix_refresh_sessions_family_id", table_name="refresh_sessions")
    op.drop_column("refresh_sessions", "family_id")
