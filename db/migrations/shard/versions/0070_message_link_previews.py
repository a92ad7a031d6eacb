"""Link previews of messages (embeds), and a message's choice to show none.

Revision ID: s0070
Revises: s0030
"""

from alembic import op
import sqlalchemy as sa

revision = "s0070"
down_revision = "s0030"
branch_labels = None
depends_on = None

S = "shard"


def upgrade() -> None:
    schema = op.get_context().version_table_schema
    op.add_column(
        "messages",
        sa.Column("suppress_embeds", sa.Boolean(), nullable=False, server_default=sa.false()),
        schema=schema,
    )
    op.create_table(
        "message_link_previews",
        sa.Column(
            "message_id",
            sa.BigInteger(),
            sa.ForeignKey(
                f"{S}.messages.id", ondelete="CASCADE", name="fk_message_link_previews_message_id_messages"
            ),
            primary_key=True,
        ),
        sa.Column("position", sa.BigInteger(), primary_key=True),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        schema=S,
    )
    op.create_index(
        "ix_message_link_previews_message_id", "message_link_previews", ["message_id", "position"], schema=S
    )


def downgrade() -> None:
    schema = op.get_context().version_table_schema
    op.drop_table("message_link_previews", schema=S)
    op.drop_column("messages", "suppress_embeds", schema=schema)
