"""The trace context (a W3C `traceparent`) of the request that wrote each outbox row, so the relay, the
consumers and the deliveries continue that request's trace (subgraphs/kernel/tracing.py). Null when the
request was not traced.

Revision ID: s0100
Revises: s0090
"""

from alembic import op
import sqlalchemy as sa

revision = "s0100"
down_revision = "s0090"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ALTER names its table by string: use the shard's real schema (None on SQLite).
    schema = op.get_context().version_table_schema
    op.add_column("outbox", sa.Column("trace_context", sa.String(55), nullable=True), schema=schema)


def downgrade() -> None:
    op.drop_column("outbox", "trace_context", schema=op.get_context().version_table_schema)
