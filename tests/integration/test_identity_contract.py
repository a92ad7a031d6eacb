"""One contract, two identity providers: the built-in issuer and a real Keycloak, through the router."""

from __future__ import annotations

import base64
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from tests.harness.client import GraphQLClient
from tests.harness.keycloak import KeycloakServer
from tests.harness.stack import Stack
from tests.integration.flows import SIGN_UP, sign_up, unique
from tests.integration.identity_helpers import (
    BEGIN_2FA,
    CHANGE_EMAIL,
    CHANGE_PASSWORD,
    CONFIRM_2FA,
    DISABLE_2FA,
    FIRST_SIGN_IN,
    ME,
    REFRESH,
    SIGN_OUT,
    SIGN_OUT_EVERYWHERE,
    UPDATE_PROFILE,
    code_at,
    create_unlinked_identity,
    fresh_totp_window,
    mint_token,
    provider_of,
    sign_in,
    user_error,
)


def client_for(stack: Stack, token: str | None = None) -> GraphQLClient:
    return GraphQLClient(stack.router_url, token)


def claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


async def test_sign_up_issues_tokens_of_the_configured_provider(identity: Stack) -> None:
    person = await sign_up(client_for(identity))
    issued = claims(person.token)
    expected = identity.env.get("BEEP_KEYCLOAK_URL", identity.env["BEEP_ISSUER_URL"])
    assert issued["iss"].startswith(expected)
    assert issued["beep_user_id"] == person.user_id
    me = (await client_for(identity, person.token).data(ME))["me"]
    assert me["id"] == person.user_id and me["email"] == person.email and me["twoFactorEnabled"] is False
    assert me["status"] == "ACTIVE" and me["language"] is None


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"username": "a"}, "TOO_SHORT", "username"),
        ({"username": "x" * 33}, "TOO_LONG", "username"),
        ({"username": "bad name"}, "INVALID_FORMAT", "username"),
        ({"email": "not-an-address"}, "INVALID_FORMAT", "email"),
        ({"password": "short"}, "WEAK_PASSWORD", "password"),
        ({"password": "aaaaaaaaaa"}, "WEAK_PASSWORD", "password"),
        ({"firstName": "  "}, "REQUIRED", "firstName"),
    ],
)
async def test_each_sign_up_rule_has_its_code_and_field(
    identity: Stack, change: dict[str, str], code: str, field: str
) -> None:
    username = unique("rule")
    fields = {"firstName": "A", "lastName": "B", "username": username, "email": f"{username}@example.test"}
    fields |= {"password": "pw-" + secrets.token_hex(6), **change}
    payload = (await client_for(identity).data(SIGN_UP, {"input": fields}))["signUp"]
    assert user_error(payload) == (code, field)


async def test_duplicate_username_and_email_are_distinct_codes(identity: Stack) -> None:
    person = await sign_up(client_for(identity))
    base = {"firstName": "A", "lastName": "B", "password": "pw-" + secrets.token_hex(6)}
    same_name = {**base, "username": person.username.upper(), "email": f"{unique('o')}@example.test"}
    same_mail = {**base, "username": unique("o"), "email": person.email.upper()}
    first = (await client_for(identity).data(SIGN_UP, {"input": same_name}))["signUp"]
    second = (await client_for(identity).data(SIGN_UP, {"input": same_mail}))["signUp"]
    assert user_error(first) == ("USERNAME_TAKEN", "username")
    assert user_error(second) == ("EMAIL_TAKEN", "email")


async def test_wrong_password_and_unknown_email_answer_alike(identity: Stack) -> None:
    person = await sign_up(client_for(identity))
    wrong = await sign_in(client_for(identity), person.email, "not-the-password")
    unknown = await sign_in(client_for(identity), f"{unique('nobody')}@example.test", "not-the-password")
    assert (
        wrong
        == unknown
        == {
            "__typename": "AuthenticationError",
            "code": "INVALID_CREDENTIALS",
            "message": "Wrong e-mail or password.",
            "field": None,
        }
    )
    right = await sign_in(client_for(identity), person.email.upper(), person.password)
    assert right["__typename"] == "AuthPayload" and right["user"]["id"] == person.user_id


async def test_two_factor_enable_confirm_sign_in_recover_disable(identity: Stack) -> None:
    await fresh_totp_window()
    person = await sign_up(client_for(identity), "tfa")
    me = client_for(identity, person.token)
    setup = (await me.data(BEGIN_2FA))["beginTwoFactorSetup"]
    secret = setup["secret"]
    assert setup["otpauthUri"].startswith("otpauth://totp/Beep:") and "secret=" in setup["otpauthUri"]
    # The secret is what an authenticator app asks for: base32 in groups of four, the URI's own secret.
    assert re.fullmatch(r"[A-Z2-7]{4}( [A-Z2-7]{4}){7}", secret), secret
    uri_secret = parse_qs(urlsplit(setup["otpauthUri"]).query)["secret"][0]
    assert secret.replace(" ", "") == uri_secret
    assert setup["qrCodePng"].startswith("data:image/png;base64,")
    assert base64.b64decode(setup["qrCodePng"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"

    wrong = await me.data(CONFIRM_2FA, {"c": "000000" if code_at(secret, 0) != "000000" else "111111"})
    assert user_error(wrong["confirmTwoFactor"]) == ("INVALID_TOTP_CODE", "code")
    confirmed = (await me.data(CONFIRM_2FA, {"c": code_at(secret, -1)}))["confirmTwoFactor"]
    recovery = confirmed["recoveryCodes"]
    assert len(recovery) == 10 and len(set(recovery)) == 10 and confirmed["user"]["twoFactorEnabled"] is True

    # Password alone is no longer enough; a wrong password with a code is still just wrong credentials.
    assert user_error(await sign_in(client_for(identity), person.email, person.password)) == (
        "TOTP_REQUIRED",
        "totpCode",
    )
    bad_code = await sign_in(client_for(identity), person.email, person.password, totpCode="12345x")
    assert user_error(bad_code) == ("INVALID_TOTP_CODE", "totpCode")
    bad_password = await sign_in(
        client_for(identity), person.email, "nope-nope-nope", totpCode=code_at(secret, 0)
    )
    assert user_error(bad_password) == ("INVALID_CREDENTIALS", None)
    ok = await sign_in(client_for(identity), person.email, person.password, totpCode=code_at(secret, 0))
    assert ok["__typename"] == "AuthPayload", ok

    by_recovery = await sign_in(client_for(identity), person.email, person.password, recoveryCode=recovery[0])
    assert by_recovery["__typename"] == "AuthPayload", by_recovery
    again = await sign_in(client_for(identity), person.email, person.password, recoveryCode=recovery[0])
    assert user_error(again) == ("INVALID_TOTP_CODE", "recoveryCode")

    token = ok["accessToken"]
    refused = await client_for(identity, token).data(
        DISABLE_2FA, {"p": "wrong-password", "c": code_at(secret, 1)}
    )
    assert user_error(refused["disableTwoFactor"]) == ("INVALID_TOTP_CODE", "code")
    disabled = await client_for(identity, token).data(
        DISABLE_2FA, {"p": person.password, "c": code_at(secret, 1)}
    )
    assert disabled["disableTwoFactor"]["user"]["twoFactorEnabled"] is False
    plain = await sign_in(client_for(identity), person.email, person.password)
    assert plain["__typename"] == "AuthPayload", plain


async def test_refresh_rotates_and_sign_out_ends_the_session(identity: Stack) -> None:
    person = await sign_up(client_for(identity))
    refreshed = (await client_for(identity).data(REFRESH, {"t": person.refresh_token}))["refreshSession"]
    assert refreshed["__typename"] == "AuthPayload" and refreshed["user"]["id"] == person.user_id
    assert (await client_for(identity, refreshed["accessToken"]).data(ME))["me"]["id"] == person.user_id
    reused = (await client_for(identity).data(REFRESH, {"t": person.refresh_token}))["refreshSession"]
    assert user_error(reused) == ("SESSION_EXPIRED", "refreshToken")

    assert (await client_for(identity).data(SIGN_OUT, {"t": refreshed["refreshToken"]}))["signOut"] is True
    after = (await client_for(identity).data(REFRESH, {"t": refreshed["refreshToken"]}))["refreshSession"]
    assert user_error(after) == ("SESSION_EXPIRED", "refreshToken")
    garbage = (await client_for(identity).data(REFRESH, {"t": "x" * 40}))["refreshSession"]
    assert user_error(garbage) == ("SESSION_EXPIRED", "refreshToken")


async def test_a_replayed_refresh_token_ends_its_whole_session(identity: Stack) -> None:
    """Reuse detection (OAuth 2.0 Security BCP): once a rotated refresh token comes back, whoever holds
    the newest one of that session is signed out too; the user's other sessions are untouched."""
    person = await sign_up(client_for(identity))
    other_device = await sign_in(client_for(identity), person.email, person.password)
    first = (await client_for(identity).data(REFRESH, {"t": person.refresh_token}))["refreshSession"]
    second = (await client_for(identity).data(REFRESH, {"t": first["refreshToken"]}))["refreshSession"]
    assert second["__typename"] == "AuthPayload", second

    replayed = (await client_for(identity).data(REFRESH, {"t": first["refreshToken"]}))["refreshSession"]
    assert user_error(replayed) == ("SESSION_EXPIRED", "refreshToken")
    newest = (await client_for(identity).data(REFRESH, {"t": second["refreshToken"]}))["refreshSession"]
    assert user_error(newest) == ("SESSION_EXPIRED", "refreshToken")
    untouched = await client_for(identity).data(REFRESH, {"t": other_device["refreshToken"]})
    assert untouched["refreshSession"]["__typename"] == "AuthPayload", untouched


async def test_sign_out_everywhere_ends_every_session(identity: Stack) -> None:
    person = await sign_up(client_for(identity))
    second = await sign_in(client_for(identity), person.email, person.password)
    ended = await client_for(identity, second["accessToken"]).data(SIGN_OUT_EVERYWHERE)
    assert ended["signOutEverywhere"] is True
    for token in (person.refresh_token, second["refreshToken"]):
        result = (await client_for(identity).data(REFRESH, {"t": token}))["refreshSession"]
        assert user_error(result) == ("SESSION_EXPIRED", "refreshToken")


async def test_profile_changes(identity: Stack) -> None:
    person = await sign_up(client_for(identity))
    other = await sign_up(client_for(identity))
    me = client_for(identity, person.token)
    new_name = unique("renamed")
    changes = {
        "firstName": "Grace",
        "lastName": "Hopper",
        "username": new_name,
        "bio": "Compilers.\nCOBOL.",
        "status": "SLEEPING",
        "language": "FR",
        "audioInputDeviceId": "mic-1",
        "videoInputDeviceId": "cam-2",
    }
    user = (await me.data(UPDATE_PROFILE, {"input": changes}))["updateProfile"]["user"]
    assert {k: user[k] for k in changes} == changes
    taken = (await me.data(UPDATE_PROFILE, {"input": {"username": other.username.upper()}}))["updateProfile"]
    assert user_error(taken) == ("USERNAME_TAKEN", "username")
    bad_status = await me.execute(UPDATE_PROFILE, {"input": {"status": "ASLEEP"}})
    assert bad_status.errors  # not an enum value: rejected by GraphQL validation
    too_long = (await me.data(UPDATE_PROFILE, {"input": {"bio": "b" * 191}}))["updateProfile"]
    assert user_error(too_long) == ("TOO_LONG", "bio")
    cleared = (await me.data(UPDATE_PROFILE, {"input": {"audioInputDeviceId": ""}}))["updateProfile"]["user"]
    assert cleared["audioInputDeviceId"] is None and cleared["videoInputDeviceId"] == "cam-2"
    # The provider's copy follows: signing in again works, and the new token speaks French.
    again = await sign_in(client_for(identity), person.email, person.password)
    assert again["user"]["username"] == new_name
    assert claims(again["accessToken"]).get("locale") == "fr"


async def test_change_email_needs_the_password(identity: Stack) -> None:
    person = await sign_up(client_for(identity))
    other = await sign_up(client_for(identity))
    me = client_for(identity, person.token)
    new_email = f"{unique('moved')}@example.test"
    wrong = (await me.data(CHANGE_EMAIL, {"e": new_email, "p": "not-it-at-all"}))["changeEmail"]
    assert user_error(wrong) == ("INVALID_CREDENTIALS", "password")
    taken = (await me.data(CHANGE_EMAIL, {"e": other.email, "p": person.password}))["changeEmail"]
    assert user_error(taken) == ("EMAIL_TAKEN", "email")
    invalid = (await me.data(CHANGE_EMAIL, {"e": "nope", "p": person.password}))["changeEmail"]
    assert user_error(invalid) == ("INVALID_FORMAT", "email")
    moved = (await me.data(CHANGE_EMAIL, {"e": new_email.upper(), "p": person.password}))["changeEmail"]
    assert moved["user"]["email"] == new_email
    assert (await sign_in(client_for(identity), new_email, person.password))["__typename"] == "AuthPayload"
    assert (
        user_error(await sign_in(client_for(identity), person.email, person.password))[0]
        == "INVALID_CREDENTIALS"
    )


async def test_change_password(identity: Stack) -> None:
    person = await sign_up(client_for(identity))
    me = client_for(identity, person.token)
    new_password = "new-" + secrets.token_hex(8)
    wrong = (await me.data(CHANGE_PASSWORD, {"o": "not-the-old-one", "n": new_password}))["changePassword"]
    assert user_error(wrong) == ("INVALID_CREDENTIALS", "oldPassword")
    weak = (await me.data(CHANGE_PASSWORD, {"o": person.password, "n": "short"}))["changePassword"]
    assert user_error(weak) == ("WEAK_PASSWORD", "newPassword")
    changed = (await me.data(CHANGE_PASSWORD, {"o": person.password, "n": new_password}))["changePassword"]
    assert changed["__typename"] == "ProfilePayload", changed
    assert (
        user_error(await sign_in(client_for(identity), person.email, person.password))[0]
        == "INVALID_CREDENTIALS"
    )
    assert (await sign_in(client_for(identity), person.email, new_password))["__typename"] == "AuthPayload"


async def test_first_sign_in_of_a_token_without_a_beep_user(
    identity: Stack, request: pytest.FixtureRequest
) -> None:
    person = await sign_up(client_for(identity))
    # A token that already names its Beep user: the same user, nothing provisioned (both providers).
    same = (await client_for(identity).data(FIRST_SIGN_IN, {"t": person.token}))["completeFirstSignIn"]
    assert same["user"]["id"] == person.user_id
    forged = mint_token(identity, person.user_id, beep_user_id=None, iss="https://elsewhere.example")
    refused = (await client_for(identity).data(FIRST_SIGN_IN, {"t": forged}))["completeFirstSignIn"]
    assert user_error(refused) == ("INVALID_CREDENTIALS", "accessToken")
    if provider_of(identity) == "builtin":
        # The built-in issuer signs only tokens of Beep users: an unlinked one of its own is refused.
        unlinked = mint_token(identity, person.user_id, beep_user_id=None)
        refused = (await client_for(identity).data(FIRST_SIGN_IN, {"t": unlinked}))["completeFirstSignIn"]
        assert user_error(refused) == ("INVALID_CREDENTIALS", "accessToken")
        return
    keycloak: KeycloakServer = request.getfixturevalue("keycloak")
    await _brokered_first_sign_in(identity, keycloak)


async def _brokered_first_sign_in(stack: Stack, keycloak: KeycloakServer) -> None:
    """An identity Keycloak holds without a Beep user (as LDAP federation or Google brokering makes
    them): the first token provisions the Beep user and writes `beep_user_id` back to Keycloak."""
    name = unique("broker")
    password = "pw-" + secrets.token_hex(8)
    kc_id = await create_unlinked_identity(keycloak, name, password, ("Linus", "Directory"))
    admin = {"Authorization": f"Bearer {keycloak.admin_token()}"}
    async with httpx.AsyncClient(timeout=15) as http:
        # What the frontend gets back from Keycloak's login pages (the same token shape).
        grant = await http.post(
            f"{keycloak.issuer}/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "beep-api",
                "client_secret": keycloak.client_secret,
                "username": name,
                "password": password,
            },
        )
        tokens = grant.json()
    assert "beep_user_id" not in claims(tokens["access_token"])
    # Such a token is not a Beep principal yet: subgraphs refuse it.
    assert (await client_for(stack, tokens["access_token"]).execute(ME)).codes == ["UNAUTHENTICATED"]

    first = (await client_for(stack).data(FIRST_SIGN_IN, {"t": tokens["access_token"]}))[
        "completeFirstSignIn"
    ]
    user = first["user"]
    assert (user["username"], user["firstName"], user["lastName"]) == (name, "Linus", "Directory")
    assert user["email"] is None  # the caller is not signed in as this user yet
    again = (await client_for(stack).data(FIRST_SIGN_IN, {"t": tokens["access_token"]}))[
        "completeFirstSignIn"
    ]
    assert user_error(again)[0] == "EMAIL_TAKEN"  # a second Beep user is never made for one identity

    refreshed = (await client_for(stack).data(REFRESH, {"t": tokens["refresh_token"]}))["refreshSession"]
    assert claims(refreshed["accessToken"])["beep_user_id"] == user["id"]
    me = (await client_for(stack, refreshed["accessToken"]).data(ME))["me"]
    assert me["id"] == user["id"] and me["email"] == f"{name}@ldap.example.test"
    async with httpx.AsyncClient(timeout=15) as http:
        stored = (await http.get(f"{keycloak.url}/admin/realms/beep/users/{kc_id}", headers=admin)).json()
    assert stored["attributes"]["beep_user_id"] == [user["id"]]


async def test_password_sign_in_of_an_unlinked_identity_provisions_it(
    keycloak_stack: Stack, keycloak: KeycloakServer
) -> None:
    """LDAP users sign in with their directory password through Beep's own signIn."""
    name = unique("ldap")
    password = "pw-" + secrets.token_hex(8)
    await create_unlinked_identity(keycloak, name, password, ("Lin", "Dap"))
    signed_in = await sign_in(client_for(keycloak_stack), f"{name}@ldap.example.test", password)
    assert signed_in["__typename"] == "AuthPayload", signed_in
    assert claims(signed_in["accessToken"])["beep_user_id"] == signed_in["user"]["id"]
    assert signed_in["user"]["username"] == name
