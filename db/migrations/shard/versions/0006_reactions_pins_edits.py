"""Messages: reactions, pins, and the edit history kept for moderators.

Revision ID: s0006
Revises: s0005
"""

from alembic import op
import sqlalchemy as sa

revision = "s0006"
down_revision = "s0005"
branch_labels = None
depends_on = None

S = "shard"
NOW = sa.text("CURRENT_TIMESTAMP")


def _message_fk(table: str) -> sa.Column:
    return sa.Column(
        "message_id",
        sa.BigInteger(),
        sa.ForeignKey(f"{S}.messages.id", ondelete="CASCADE", name=f"fk_{table}_message_id_messages"),
        nullable=False,
        primary_key=table == "message_reactions",
    )


def upgrade() -> None:
    op.create_table(
        "message_reactions",
        _message_fk("message_reactions"),
        sa.Column("user_id", sa.BigInteger(), primary_key=True),
        sa.Column("emoji", sa.String(64), primary_key=True),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        schema=S,
    )
    op.create_index("ix_message_reactions_server_id", "message_reactions", ["server_id"], schema=S)
    op.create_table(
        "message_edits",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        _message_fk("message_edits"),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=False),
        schema=S,
    )
    op.create_index("ix_message_edits_message_id", "message_edits", ["message_id", "id"], schema=S)
    op.create_index("ix_message_edits_server_id", "message_edits", ["server_id"], schema=S)
    # ALTER names its table by string, which the schema translation does not reach (see s0004).
    real = op.get_context().version_table_schema
    op.add_column("messages", sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=True), schema=real)
    op.add_column("messages", sa.Column("pinned_by", sa.BigInteger(), nullable=True), schema=real)
    op.create_index("ix_messages_channel_id_pinned_at", "messages", ["channel_id", "pinned_at"], schema=S)


def downgrade() -> None:
    real = op.get_context().version_table_schema
    op.drop_index("ix_messages_channel_id_pinned_at", "messages", schema=S)
    op.drop_column("messages", "pinned_by", schema=real)
    op.drop_column("messages", "pinned_at", schema=real)
    op.drop_table("message_edits", schema=S)
    op.drop_table("message_reactions", schema=S)
