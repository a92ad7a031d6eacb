"""The directory outbox's trace context, as each shard's (s0100).

Revision ID: d0120
Revises: d0110
"""

import sqlalchemy as sa
from alembic import op

revision = "d0120"
down_revision = "d0110"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("trace_context", sa.String(55), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "trace_context")
