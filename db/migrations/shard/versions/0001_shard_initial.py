"""Tenant shard: servers, members, channels, messages, webhooks.

Tables are created in the placeholder schema `shard`, translated per logical shard by db.migrate.

Revision ID: s0001
Revises:
"""

from alembic import op
import sqlalchemy as sa

revision = "s0001"
down_revision = None
branch_labels = None
depends_on = None

S = "shard"
NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "servers",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        schema=S,
    )
    op.create_table(
        "members",
        sa.Column(
            "server_id",
            sa.BigInteger(),
            sa.ForeignKey(f"{S}.servers.id", ondelete="CASCADE", name="fk_members_server_id_servers"),
            primary_key=True,
        ),
        sa.Column("user_id", sa.BigInteger(), primary_key=True),
        sa.Column("joined_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        schema=S,
    )
    op.create_index("ix_members_user_id", "members", ["user_id"], schema=S)
    op.create_table(
        "channels",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column(
            "server_id",
            sa.BigInteger(),
            sa.ForeignKey(f"{S}.servers.id", ondelete="CASCADE", name="fk_channels_server_id_servers"),
            nullable=False,
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column(
            "parent_id",
            sa.BigInteger(),
            sa.ForeignKey(f"{S}.channels.id", ondelete="SET NULL", name="fk_channels_parent_id_channels"),
            nullable=True,
        ),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        schema=S,
    )
    op.create_index("ix_channels_server_position", "channels", ["server_id", "position"], schema=S)
    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column(
            "channel_id",
            sa.BigInteger(),
            sa.ForeignKey(f"{S}.channels.id", ondelete="CASCADE", name="fk_messages_channel_id_channels"),
            nullable=False,
        ),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column("author_id", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("reply_to_id", sa.BigInteger(), nullable=True),
        sa.Column("nonce", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("channel_id", "author_id", "nonce", name="uq_messages_nonce"),
        schema=S,
    )
    op.create_index("ix_messages_channel_id_id", "messages", ["channel_id", "id"], schema=S)
    op.create_table(
        "webhooks",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "channel_id",
            sa.BigInteger(),
            sa.ForeignKey(f"{S}.channels.id", ondelete="CASCADE", name="fk_webhooks_channel_id_channels"),
            nullable=False,
        ),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("creator_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        schema=S,
    )
    op.create_index("ix_webhooks_server_id", "webhooks", ["server_id"], schema=S)
    op.create_index("ix_webhooks_channel_id", "webhooks", ["channel_id"], schema=S)


def downgrade() -> None:
    for table in ("webhooks", "messages", "channels", "members", "servers"):
        op.drop_table(table, schema=S)
