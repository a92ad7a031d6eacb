"""Read state: the last message each member has read in each channel.

Revision ID: s0008
Revises: s0007
"""

from alembic import op
import sqlalchemy as sa

revision = "s0008"
down_revision = "s0007"
branch_labels = None
depends_on = None

S = "shard"


def upgrade() -> None:
    op.create_table(
        "read_states",
        sa.Column(
            "channel_id",
            sa.BigInteger(),
            sa.ForeignKey(f"{S}.channels.id", ondelete="CASCADE", name="fk_read_states_channel_id_channels"),
            primary_key=True,
        ),
        sa.Column("user_id", sa.BigInteger(), primary_key=True),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column("last_read_id", sa.BigInteger(), nullable=False),
        schema=S,
    )
    op.create_index("ix_read_states_server_id_user_id", "read_states", ["server_id", "user_id"], schema=S)


def downgrade() -> None:
    op.drop_table("read_states", schema=S)
