"""Shard: message attachments (files in media/, one row each; NULL message_id while an upload waits).

Revision ID: s0030
Revises: s0021
"""

from alembic import op
import sqlalchemy as sa

revision = "s0030"
down_revision = "s0021"
branch_labels = None
depends_on = None

S = "shard"


def upgrade() -> None:
    op.create_table(
        "attachments",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column(
            "message_id",
            sa.BigInteger(),
            sa.ForeignKey(f"{S}.messages.id", ondelete="CASCADE", name="fk_attachments_message_id_messages"),
            nullable=True,
        ),
        sa.Column(
            "channel_id",
            sa.BigInteger(),
            sa.ForeignKey(f"{S}.channels.id", ondelete="CASCADE", name="fk_attachments_channel_id_channels"),
            nullable=False,
        ),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column("uploader_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(127), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("storage_key", sa.String(256), nullable=False),
        sa.Column("thumbnail_key", sa.String(256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        schema=S,
    )
    op.create_index("ix_attachments_message_id_position", "attachments", ["message_id", "position"], schema=S)
    op.create_index(
        "ix_attachments_server_id_storage_key", "attachments", ["server_id", "storage_key"], schema=S
    )
    op.create_index(
        "ix_attachments_server_id_thumbnail_key", "attachments", ["server_id", "thumbnail_key"], schema=S
    )
    op.create_index(
        "ix_attachments_channel_id_uploader_id", "attachments", ["channel_id", "uploader_id"], schema=S
    )


def downgrade() -> None:
    op.drop_table("attachments", schema=S)
