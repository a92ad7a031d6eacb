"""Directory: the journal of tenant moves and where moved rows went (db/locator.py).

Revision ID: d0004
Revises: d0003
"""

from alembic import op
import sqlalchemy as sa

revision = "d0004"
down_revision = "d0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_moves",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("from_shard", sa.Integer(), nullable=False),
        sa.Column("to_shard", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_tenant_moves_tenant_id", "tenant_moves", ["tenant_id"])
    op.create_index("ix_tenant_moves_from_shard", "tenant_moves", ["from_shard"])
    op.create_table(
        "relocations",
        sa.Column("entity_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
    )
    op.create_index("ix_relocations_tenant_id", "relocations", ["tenant_id"])


def downgrade() -> None:
    op.drop_table("relocations")
    op.drop_table("tenant_moves")
