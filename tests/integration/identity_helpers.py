"""Client-side steps of the identity tests (both providers), and tokens minted the way an attacker or
a second issuer would."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import struct
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from subgraphs.users import totp
from subgraphs.users.issuer import load_or_create_key
from tests.harness.client import GraphQLClient
from tests.harness.keycloak import KeycloakServer
from tests.harness.stack import Stack

AUTH_FIELDS = """
  __typename
  ... on AuthPayload { accessToken refreshToken expiresIn user { id username email } }
  ... on UserError { code message field }
"""
SIGN_IN = f"mutation($input: SignInInput!) {{ signIn(input: $input) {{ {AUTH_FIELDS} }} }}"
REFRESH = f"mutation($t: String!) {{ refreshSession(refreshToken: $t) {{ {AUTH_FIELDS} }} }}"
SIGN_OUT = "mutation($t: String!) { signOut(refreshToken: $t) }"
SIGN_OUT_EVERYWHERE = "mutation { signOutEverywhere }"
ME = """query { me { id username firstName lastName email bio status connectionStatus language
  audioInputDeviceId videoInputDeviceId twoFactorEnabled } }"""
PROFILE_FIELDS = """
  __typename
  ... on ProfilePayload { user { id username firstName lastName email bio status language
    audioInputDeviceId videoInputDeviceId twoFactorEnabled } }
  ... on UserError { code message field }
"""
UPDATE_PROFILE = (
    f"mutation($input: UpdateProfileInput!) {{ updateProfile(input: $input) {{ {PROFILE_FIELDS} }} }}"
)
CHANGE_EMAIL = (
    f"mutation($e: String!, $p: String!) {{ changeEmail(email: $e, password: $p) {{ {PROFILE_FIELDS} }} }}"
)
CHANGE_PASSWORD = f"""mutation($o: String!, $n: String!) {{
  changePassword(oldPassword: $o, newPassword: $n) {{ {PROFILE_FIELDS} }} }}"""
BEGIN_2FA = """mutation { beginTwoFactorSetup { __typename
  ... on TwoFactorSetup { secret otpauthUri qrCodePng } ... on UserError { code message field } } }"""
CONFIRM_2FA = """mutation($c: String!) { confirmTwoFactor(code: $c) {
  __typename ... on TwoFactorEnabled { recoveryCodes user { twoFactorEnabled } }
  ... on UserError { code message field } } }"""
DISABLE_2FA = f"""mutation($p: String!, $c: String!) {{
  disableTwoFactor(password: $p, code: $c) {{ {PROFILE_FIELDS} }} }}"""
FIRST_SIGN_IN = """mutation($t: String!) { completeFirstSignIn(accessToken: $t) {
  __typename ... on FirstSignInPayload { user { id username firstName lastName email } }
  ... on UserError { code message field } } }"""


def provider_of(stack: Stack) -> str:
    return stack.env.get("BEEP_IDENTITY", "builtin")


async def sign_in(client: GraphQLClient, email: str, password: str, **extra: str) -> dict[str, Any]:
    data = await client.with_token(None).data(
        SIGN_IN, {"input": {"email": email, "password": password, **extra}}
    )
    return dict(data["signIn"])


async def fresh_totp_window() -> None:
    """Codes of the previous, current and next 30 s steps are accepted; start with time to spare so a
    test's codes do not slide out of that window while it runs."""
    left = totp.PERIOD - time.time() % totp.PERIOD
    if left < 12:
        await asyncio.sleep(left + 0.5)


def code_at(secret: str, steps_from_now: int) -> str:
    """The code an authenticator app shows for `secret` as the user typed it (base32, spaces allowed):
    RFC 6238 with the app's defaults (HMAC-SHA-1, 30 s, 6 digits), nothing of Beep's own code."""
    key = base64.b32decode(secret.replace(" ", "").upper())
    counter = int(time.time() + steps_from_now * 30) // 30
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def builtin_key_file(stack: Stack) -> Path:
    return Path(stack.env["BEEP_DATA_DIR"]) / "issuer" / "signing-key.pem"


def mint_token(
    stack: Stack, user_id: str, *, key: rsa.RSAPrivateKey | None = None, kid: str | None = None, **claims: Any
) -> str:
    """A token as the stack's built-in issuer signs it (its key file), with claims overridden."""
    signing = load_or_create_key(builtin_key_file(stack))
    now = int(time.time())
    body = {
        "iss": stack.env["BEEP_ISSUER_URL"],
        "sub": user_id,
        "aud": "beep",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "beep_user_id": user_id,
        **claims,
    }
    return jwt.encode(
        body, key or signing.private_key, algorithm="RS256", headers={"kid": kid or signing.kid}
    )


def user_error(payload: dict[str, Any]) -> tuple[str, str | None]:
    assert "code" in payload, payload
    return payload["code"], payload.get("field")


async def create_unlinked_identity(
    keycloak: KeycloakServer, name: str, password: str, names: tuple[str, str]
) -> str:
    """An identity in Keycloak with no Beep user, as LDAP federation or Google brokering makes them; its
    Keycloak id."""
    async with httpx.AsyncClient(timeout=15) as http:
        created = await http.post(
            f"{keycloak.url}/admin/realms/beep/users",
            headers={"Authorization": f"Bearer {keycloak.admin_token()}"},
            json={
                "username": name,
                "email": f"{name}@ldap.example.test",
                "firstName": names[0],
                "lastName": names[1],
                "enabled": True,
                "credentials": [{"type": "password", "value": password, "temporary": False}],
            },
        )
    assert created.status_code == 201, created.text
    return str(created.headers["location"].rsplit("/", 1)[1])
