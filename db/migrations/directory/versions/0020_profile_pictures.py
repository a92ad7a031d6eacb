"""Directory: storage keys of a user's profile picture and banner (media/; NULL when unset).

Revision ID: d0020
Revises: d0010
"""

from alembic import op
import sqlalchemy as sa

revision = "d0020"
down_revision = "d0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("avatar_key", sa.String(256), nullable=True))
        batch.add_column(sa.Column("banner_key", sa.String(256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("banner_key")
        batch.drop_column("avatar_key")
