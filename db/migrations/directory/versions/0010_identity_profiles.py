"""Directory: identity provider link, profile and settings, two-factor state of users.

Revision ID: d0010
Revises: d0005
"""

from alembic import op
import sqlalchemy as sa

revision = "d0010"
down_revision = "d0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        # Keycloak's user id when Keycloak holds the credentials (then password_hash is empty).
        batch.add_column(sa.Column("keycloak_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("bio", sa.String(190), nullable=False, server_default=""))
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="ACTIVE"))
        # NULL: not chosen, error messages follow the browser's Accept-Language.
        batch.add_column(sa.Column("language", sa.String(2), nullable=True))
        batch.add_column(sa.Column("audio_input_device_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("video_input_device_id", sa.String(255), nullable=True))
        # Built-in issuer only: the active TOTP secret (Keycloak keeps its own OTP credential).
        batch.add_column(sa.Column("totp_secret", sa.String(64), nullable=True))
        # Both providers: a secret shown once at setup, until confirmed with a code.
        batch.add_column(sa.Column("totp_pending_secret", sa.String(64), nullable=True))
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("recovery_code_hashes", sa.Text(), nullable=True))
        batch.create_unique_constraint("uq_users_keycloak_id", ["keycloak_id"])


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_keycloak_id", type_="unique")
        for column in (
            "recovery_code_hashes",
            "totp_last_step",
            "totp_pending_secret",
            "totp_secret",
            "video_input_device_id",
            "audio_input_device_id",
            "language",
            "status",
            "bio",
            "keycloak_id",
        ):
            batch.drop_column(column)
