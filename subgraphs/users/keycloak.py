"""Keycloak as the identity provider (production): realm `beep`, driven through python-keycloak.

- `beep-api` (confidential): direct grant for sign-in (Keycloak checks the password and, when the user
  has an OTP credential, the one-time code) and a service account that manages identities.
- `beep-api-password-check` (confidential, its direct grant flow checks the password only): Keycloak
  answers a missing code and a wrong password alike ("invalid_grant"), so this client tells them apart
  (TOTP_REQUIRED vs INVALID_CREDENTIALS), and signs in with a Beep recovery code. Its sessions are ended
  at once when it is only used as a check.
- Two-factor authentication is Keycloak's own OTP credential (created with the secret the user confirmed);
  Beep keeps only the recovery codes, which Keycloak's direct grant cannot take.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any, cast

import jwt
from keycloak.exceptions import KeycloakAuthenticationError, KeycloakError, KeycloakOperationError

from keycloak import KeycloakAdmin, KeycloakOpenID, KeycloakOpenIDConnection
from subgraphs.kernel.errors import Conflict, ErrorCode, ValidationFailed
from subgraphs.kernel.settings import Settings
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.users import totp
from subgraphs.users.identity import (
    SessionReplayed,
    SignedIn,
    Tokens,
    session_expired,
    totp_required,
    wrong_credentials,
    wrong_totp,
)
from subgraphs.users.models import UserRow

log = logging.getLogger("beep.users.keycloak")
_REFUSED = (KeycloakAuthenticationError, KeycloakOperationError)


def _status(error: KeycloakError) -> int:
    return int(error.response_code or 0)


def _unverified(token: str) -> dict[str, Any]:
    # Only for tokens Keycloak just handed us over the back channel, or to route a refresh token to the
    # client that owns it (Keycloak then verifies it).
    try:
        return dict(jwt.decode(token, options={"verify_signature": False}))
    except jwt.PyJWTError:
        return {}


def _spent(error: KeycloakError) -> bool:
    body = error.response_body
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    return "Stale token" in text or "reuse exceeded" in text


class KeycloakProvider:
    name = "keycloak"

    def __init__(self, settings: Settings) -> None:
        url = settings.keycloak_url.rstrip("/") + "/"
        realm, secret = settings.keycloak_realm, settings.keycloak_client_secret
        self.api = KeycloakOpenID(url, realm, settings.keycloak_client_id, secret)
        self.check = KeycloakOpenID(url, realm, settings.keycloak_password_check_client_id, secret)
        self.clients = {
            settings.keycloak_client_id: self.api,
            settings.keycloak_password_check_client_id: self.check,
        }
        connection = KeycloakOpenIDConnection(
            server_url=url, realm_name=realm, client_id=settings.keycloak_client_id, client_secret_key=secret
        )
        self.admin = KeycloakAdmin(connection=connection)

    # --- sessions ---------------------------------------------------------------------------------

    @staticmethod
    def _signed_in(response: dict[str, Any]) -> SignedIn:
        tokens = Tokens(
            response["access_token"], response["refresh_token"], int(response.get("expires_in", 0))
        )
        claims = _unverified(tokens.access_token)
        raw = str(claims.get("beep_user_id") or "")
        return SignedIn(tokens, int(raw) if raw.isdigit() else None, claims)

    async def _password_ok(self, email: str, password: str) -> bool:
        try:
            response = await self.check.a_token(email, password)
        except _REFUSED:
            return False
        await self._end(self.check, response["refresh_token"])
        return True

    @staticmethod
    async def _end(client: KeycloakOpenID, refresh_token: str) -> None:
        with contextlib.suppress(*_REFUSED):  # already over
            await client.a_logout(refresh_token)

    async def sign_in(self, uow: UnitOfWork, email: str, password: str, totp_code: str | None) -> SignedIn:
        email = email.strip().lower()[:254]
        password = password[:1024]
        try:
            # python-keycloak types the code as int; it is a string of digits (leading zeros matter).
            return self._signed_in(await self.api.a_token(email, password, totp=cast(Any, totp_code or None)))
        except _REFUSED:
            pass
        if not await self._password_ok(email, password):
            raise wrong_credentials()
        raise wrong_totp() if totp_code else totp_required()

    async def sign_in_without_totp(self, uow: UnitOfWork, email: str, password: str) -> SignedIn:
        try:
            return self._signed_in(await self.check.a_token(email.strip().lower()[:254], password[:1024]))
        except _REFUSED:
            raise wrong_credentials() from None

    async def check_password(self, user: UserRow, password: str) -> bool:
        return await self._password_ok(user.email, password[:1024])

    async def check_totp(self, uow: UnitOfWork, user: UserRow, password: str, code: str) -> bool:
        try:
            response = await self.api.a_token(user.email, password[:1024], totp=cast(Any, code))
        except _REFUSED:
            return False
        await self._end(self.api, response["refresh_token"])
        return True

    def _owner(self, refresh_token: str) -> KeycloakOpenID | None:
        return self.clients.get(str(_unverified(refresh_token).get("azp")))

    async def refresh(self, uow: UnitOfWork, refresh_token: str) -> SignedIn:
        client = self._owner(refresh_token)
        if client is None:
            raise session_expired()
        try:
            return self._signed_in(await client.a_refresh_token(refresh_token))
        except _REFUSED as refused:
            # With `revokeRefreshToken` and no reuse allowed, Keycloak refuses a spent token ("Stale token",
            # "Maximum allowed refresh token reuse exceeded") yet keeps its session alive: end it here.
            # Only a token Keycloak itself recognised as spent names a session, so `sid` is trusted then.
            session = str(_unverified(refresh_token).get("sid") or "")
            if session and _spent(refused):
                raise SessionReplayed(session) from None
            raise session_expired() from None

    async def end_replayed(self, uow: UnitOfWork, replayed: SessionReplayed) -> None:
        realm = self.admin.connection.realm_name
        with contextlib.suppress(*_REFUSED):  # already over
            await self.admin.connection.a_raw_delete(f"admin/realms/{realm}/sessions/{replayed.session_key}")

    async def sign_out(self, uow: UnitOfWork, refresh_token: str) -> None:
        client = self._owner(refresh_token)
        if client is not None:
            await self._end(client, refresh_token)

    async def sign_out_everywhere(self, uow: UnitOfWork, user: UserRow) -> None:
        if user.keycloak_id:
            await self.admin.a_user_logout(user.keycloak_id)

    # --- identities -------------------------------------------------------------------------------

    @staticmethod
    def _representation(user: UserRow, current: dict[str, Any] | None = None) -> dict[str, Any]:
        attributes = dict((current or {}).get("attributes") or {})
        attributes["beep_user_id"] = [str(user.id)]
        attributes.pop("locale", None)
        if user.language:  # Keycloak's own locale attribute: its `locale` claim carries the setting
            attributes["locale"] = [user.language.lower()]
        return {
            **(current or {}),
            "username": user.username.lower(),
            "email": user.email,
            "firstName": user.first_name,
            "lastName": user.last_name,
            "attributes": attributes,
        }

    async def create_identity(self, user: UserRow, password: str) -> None:
        payload = {
            **self._representation(user),
            "enabled": True,
            "emailVerified": False,
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        }
        try:
            user.keycloak_id = await self.admin.a_create_user(payload)
        except KeycloakOperationError as error:
            raise self._refusal(error) from error

    @staticmethod
    def _refusal(error: KeycloakError) -> Exception:
        """Keycloak's answers to a write, as Beep's domain errors (anything else stays an error)."""
        body = error.error_message.decode(errors="replace") if isinstance(error.error_message, bytes) else ""
        if _status(error) == 409 and "email" in body.lower():
            return Conflict(
                "An account with that e-mail already exists.", code=ErrorCode.EMAIL_TAKEN, field="email"
            )
        if _status(error) == 409:
            return Conflict("That username is taken.", code=ErrorCode.USERNAME_TAKEN, field="username")
        if _status(error) == 400 and "password" in body.lower():
            return ValidationFailed(
                "Choose a less guessable password.", code=ErrorCode.WEAK_PASSWORD, field="password"
            )
        return error

    async def delete_identity(self, user: UserRow) -> None:
        if not user.keycloak_id:
            return
        try:
            await self.admin.a_delete_user(user.keycloak_id)
        except KeycloakOperationError as error:
            if _status(error) != 404:
                raise

    async def set_password(self, uow: UnitOfWork, user: UserRow, password: str) -> None:
        try:
            await self.admin.a_set_user_password(str(user.keycloak_id), password, temporary=False)
        except KeycloakOperationError as error:
            raise self._refusal(error) from error

    async def sync_profile(self, user: UserRow) -> None:
        current = await self.admin.a_get_user(str(user.keycloak_id))
        try:
            await self.admin.a_update_user(str(user.keycloak_id), self._representation(user, current))
        except KeycloakOperationError as error:
            raise self._refusal(error) from error

    async def link(self, user: UserRow, claims: dict[str, Any]) -> None:
        user.keycloak_id = str(claims["sub"])
        await self.sync_profile(user)

    # --- two-factor -------------------------------------------------------------------------------

    async def _otp_credentials(self, user: UserRow) -> list[dict[str, Any]]:
        found = await self.admin.a_get_credentials(str(user.keycloak_id))
        return [c for c in found if c.get("type") == "otp"]

    async def totp_enabled(self, user: UserRow) -> bool:
        return bool(user.keycloak_id) and bool(await self._otp_credentials(user))

    async def activate_totp(self, user: UserRow, secret: str) -> None:
        # The admin API creates a credential through the user representation; Keycloak keeps the secret
        # as raw text, which is what totp.new_secret() makes.
        credential = {
            "type": "otp",
            "userLabel": "Beep",
            "secretData": json.dumps({"value": secret}),
            "credentialData": json.dumps(
                {
                    "subType": "totp",
                    "period": totp.PERIOD,
                    "digits": totp.DIGITS,
                    "algorithm": "HmacSHA1",
                    "counter": 0,
                }
            ),
        }
        await self.admin.a_update_user(str(user.keycloak_id), {"credentials": [credential]})

    async def deactivate_totp(self, user: UserRow) -> None:
        for credential in await self._otp_credentials(user):
            await self.admin.a_delete_credential(str(user.keycloak_id), credential["id"])
