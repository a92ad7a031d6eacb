"""The built-in identity provider (embedded default): Argon2 passwords and TOTP secrets on the user row,
refresh sessions in the directory, access tokens from the built-in issuer."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from db.ids import DIRECTORY_SHARD, new_id
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.users import repository, totp
from subgraphs.users.identity import (
    SessionReplayed,
    SignedIn,
    Tokens,
    session_expired,
    totp_required,
    wrong_credentials,
    wrong_totp,
)
from subgraphs.users.issuer import Issuer
from subgraphs.users.models import UserRow
from subgraphs.users.passwords import hash_password, verify_password


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class BuiltinProvider:
    name = "builtin"

    def __init__(self, issuer: Issuer, refresh_ttl: int) -> None:
        self.issuer = issuer
        self.refresh_ttl = refresh_ttl

    async def _session(self, uow: UnitOfWork, user: UserRow, family_id: int | None = None) -> SignedIn:
        refresh_token = secrets.token_urlsafe(32)
        expires_at = datetime.now(UTC) + timedelta(seconds=self.refresh_ttl)
        token_hash = hash_token(refresh_token)
        await repository.insert_refresh_session(
            uow.directory(), new_id(DIRECTORY_SHARD), user.id, token_hash, expires_at, family_id
        )
        locale = user.language.lower() if user.language else None
        access = self.issuer.access_token(user.id, user.username, locale)
        return SignedIn(Tokens(access, refresh_token, self.issuer.access_ttl), user.id, {})

    async def create_identity(self, user: UserRow, password: str) -> None:
        user.password_hash = await hash_password(password)

    async def delete_identity(self, user: UserRow) -> None:
        return None  # nothing outside the user row, which the rollback removes

    async def _password_user(self, uow: UnitOfWork, email: str, password: str) -> UserRow:
        user = await repository.user_by_email(uow.directory(), email.strip().lower()[:254])
        # Verified even for an unknown e-mail (against a dummy hash): the same time for both answers.
        ok = await verify_password(user.password_hash if user else None, password[:1024])
        if user is None or not ok:
            raise wrong_credentials()
        return user

    async def sign_in(self, uow: UnitOfWork, email: str, password: str, totp_code: str | None) -> SignedIn:
        user = await self._password_user(uow, email, password)
        if user.totp_secret:
            if not totp_code:
                raise totp_required()
            step = totp.matching_step(user.totp_secret, totp_code, user.totp_last_step)
            if step is None:
                raise wrong_totp()
            user.totp_last_step = step
        return await self._session(uow, user)

    async def sign_in_without_totp(self, uow: UnitOfWork, email: str, password: str) -> SignedIn:
        return await self._session(uow, await self._password_user(uow, email, password))

    async def check_password(self, user: UserRow, password: str) -> bool:
        return await verify_password(user.password_hash, password[:1024])

    async def check_totp(self, uow: UnitOfWork, user: UserRow, password: str, code: str) -> bool:
        if not user.totp_secret or not await self.check_password(user, password):
            return False
        step = totp.matching_step(user.totp_secret, code, user.totp_last_step)
        if step is None:
            return False
        user.totp_last_step = step
        return True

    async def refresh(self, uow: UnitOfWork, refresh_token: str) -> SignedIn:
        session = uow.directory()
        found = await repository.unexpired_refresh_session(session, hash_token(refresh_token[:256]))
        if found is None:
            raise session_expired()
        family = found.family_id or found.id
        # Rotation: each refresh token works once; the new one replaces it. A token already spent (by
        # rotation, or by signing out) coming back means a copy exists: the whole family ends.
        if found.revoked_at is not None or not await repository.claim_refresh_session(session, found.id):
            raise SessionReplayed(str(family))
        user = (await repository.users_by_ids(session, [found.user_id]))[found.user_id]
        return await self._session(uow, user, family)

    async def end_replayed(self, uow: UnitOfWork, replayed: SessionReplayed) -> None:
        if replayed.session_key.isdigit():
            await repository.revoke_refresh_family(uow.directory(), int(replayed.session_key))

    async def sign_out(self, uow: UnitOfWork, refresh_token: str) -> None:
        found = await repository.live_refresh_session(uow.directory(), hash_token(refresh_token[:256]))
        if found is not None:
            found.revoked_at = datetime.now(UTC)

    async def sign_out_everywhere(self, uow: UnitOfWork, user: UserRow) -> None:
        await repository.revoke_refresh_sessions(uow.directory(), user.id)

    async def set_password(self, uow: UnitOfWork, user: UserRow, password: str) -> None:
        user.password_hash = await hash_password(password)

    async def sync_profile(self, user: UserRow) -> None:
        return None  # the user row is the only copy

    async def totp_enabled(self, user: UserRow) -> bool:
        return user.totp_secret is not None

    async def activate_totp(self, user: UserRow, secret: str) -> None:
        user.totp_secret = secret

    async def deactivate_totp(self, user: UserRow) -> None:
        user.totp_secret = None

    async def link(self, user: UserRow, claims: dict[str, Any]) -> None:
        return None  # the built-in issuer only signs tokens of Beep users: nothing is ever brokered
