"""Who holds credentials and issues tokens: the built-in issuer or Keycloak, behind one interface.

The users service keeps Beep's user rows (profile, settings, the link to the identity) and calls the
provider for everything about credentials: passwords, one-time codes, sessions and tokens. Both providers
pass one contract suite (tests/integration/test_identity_contract.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from subgraphs.kernel.errors import AuthenticationFailed, ErrorCode
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.users.models import UserRow


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class SignedIn:
    tokens: Tokens
    user_id: int | None  # None: a Keycloak identity with no Beep user yet (first sign-in of LDAP/Google)
    claims: dict[str, Any]


def wrong_credentials() -> AuthenticationFailed:
    # One answer for an unknown e-mail and a wrong password: no account probing.
    return AuthenticationFailed("Wrong e-mail or password.", code=ErrorCode.INVALID_CREDENTIALS)


def totp_required() -> AuthenticationFailed:
    return AuthenticationFailed(
        "Enter the 6-digit code from your authenticator app.", code=ErrorCode.TOTP_REQUIRED, field="totpCode"
    )


def wrong_totp(field: str = "totpCode") -> AuthenticationFailed:
    return AuthenticationFailed("That code is not valid.", code=ErrorCode.INVALID_TOTP_CODE, field=field)


class SessionReplayed(Exception):
    """A refresh token was used a second time: someone holds a copy (OAuth 2.0 Security BCP, 4.14).

    Not a DomainError on purpose: the refresh's transaction rolls back, then the caller ends the whole
    session (`IdentityProvider.end_replayed`) in a transaction of its own and answers SESSION_EXPIRED,
    exactly as for any other spent token, so the replayer learns nothing."""

    def __init__(self, session_key: str) -> None:
        super().__init__("refresh token replayed")
        self.session_key = session_key  # the built-in provider's family id, Keycloak's session id


def session_expired() -> AuthenticationFailed:
    return AuthenticationFailed(
        "This session has ended: sign in again.", code=ErrorCode.SESSION_EXPIRED, field="refreshToken"
    )


class IdentityProvider(Protocol):
    name: str

    async def create_identity(self, user: UserRow, password: str) -> None:
        """Credentials for a new Beep user (who is already in the session, flushed)."""
        ...

    async def delete_identity(self, user: UserRow) -> None:
        """Undo `create_identity` (compensation when sign-up fails after it)."""
        ...

    async def sign_in(self, uow: UnitOfWork, email: str, password: str, totp_code: str | None) -> SignedIn:
        """Raises wrong_credentials(), totp_required() or wrong_totp()."""
        ...

    async def sign_in_without_totp(self, uow: UnitOfWork, email: str, password: str) -> SignedIn:
        """Password only (a recovery code stands in for the one-time code; the caller checks it)."""
        ...

    async def check_password(self, user: UserRow, password: str) -> bool: ...

    async def check_totp(self, uow: UnitOfWork, user: UserRow, password: str, code: str) -> bool:
        """Password and current one-time code together (to turn two-factor authentication off)."""
        ...

    async def refresh(self, uow: UnitOfWork, refresh_token: str) -> SignedIn:
        """Raises session_expired(), or SessionReplayed for a token that was already rotated."""
        ...

    async def end_replayed(self, uow: UnitOfWork, replayed: SessionReplayed) -> None:
        """End every token of the session a replayed refresh token belonged to."""
        ...

    async def sign_out(self, uow: UnitOfWork, refresh_token: str) -> None: ...

    async def sign_out_everywhere(self, uow: UnitOfWork, user: UserRow) -> None: ...

    async def set_password(self, uow: UnitOfWork, user: UserRow, password: str) -> None: ...

    async def sync_profile(self, user: UserRow) -> None:
        """Username, e-mail, names and language, where the provider keeps a copy."""
        ...

    async def totp_enabled(self, user: UserRow) -> bool: ...

    async def activate_totp(self, user: UserRow, secret: str) -> None: ...

    async def deactivate_totp(self, user: UserRow) -> None: ...

    async def link(self, user: UserRow, claims: dict[str, Any]) -> None:
        """Attach a provisioned Beep user to the brokered identity the claims describe."""
        ...
