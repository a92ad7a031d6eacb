"""Tables owned by the users context (directory database: users are global, not tenant-scoped)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from db.base import DirectoryBase


class UserRow(DirectoryBase):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    username: Mapped[str] = mapped_column(String(32))
    username_key: Mapped[str] = mapped_column(String(32), unique=True)  # case-folded, for uniqueness
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-cased
    password_hash: Mapped[str] = mapped_column(String(255))  # empty when Keycloak holds the password
    first_name: Mapped[str] = mapped_column(String(64))
    last_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    keycloak_id: Mapped[str | None] = mapped_column(String(36), unique=True, default=None)
    bio: Mapped[str] = mapped_column(String(190), default="")
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    language: Mapped[str | None] = mapped_column(String(2), default=None)  # None: follow the browser
    audio_input_device_id: Mapped[str | None] = mapped_column(String(255), default=None)
    video_input_device_id: Mapped[str | None] = mapped_column(String(255), default=None)
    # media/ storage keys of the profile picture and banner; None when unset.
    avatar_key: Mapped[str | None] = mapped_column(String(256), default=None)
    banner_key: Mapped[str | None] = mapped_column(String(256), default=None)
    # Secrets: never leave the server (the pending secret is shown once, in the setup response).
    totp_secret: Mapped[str | None] = mapped_column(String(64), default=None)  # built-in issuer only
    totp_pending_secret: Mapped[str | None] = mapped_column(String(64), default=None)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, default=None)  # no code replay
    recovery_code_hashes: Mapped[str | None] = mapped_column(Text, default=None)  # JSON list of SHA-256
    # A bot account (created by the webhooks context in a server; signs in with a bot token only).
    bot: Mapped[bool] = mapped_column(default=False)


class RefreshSessionRow(DirectoryBase):
    """A signed-in device. Only a hash of the refresh token is kept."""

    __tablename__ = "refresh_sessions"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Every token a sign-in's rotations produced shares the first one's id: a replay ends them all.
    family_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
