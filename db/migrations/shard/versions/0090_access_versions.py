"""Access versions: a server's, replaced in the transaction of every access change (AccessChanged), so
processes may keep computed channel permissions and check them with one read
(subgraphs/kernel/tenancy/access_versions.py). No rows at first: a server gets one with its first change.

Revision ID: s0090
Revises: s0080
"""

from alembic import op
import sqlalchemy as sa

revision = "s0090"
down_revision = "s0080"
branch_labels = None
depends_on = None

S = "shard"


def upgrade() -> None:
    op.create_table(
        "access_versions",
        sa.Column(
            "server_id",
            sa.BigInteger(),
            sa.ForeignKey(f"{S}.servers.id", ondelete="CASCADE", name="fk_access_versions_server_id_servers"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("version", sa.BigInteger(), nullable=False),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("access_versions", schema=S)
