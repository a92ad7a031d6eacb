"""Rules of the users context: accounts, sessions, two-factor, profiles, search. Never commits.

Credentials are the identity provider's (identity.py); Beep's user row holds the profile, settings and
the link to the identity. Writes to the provider happen after the row is flushed, so a provider refusal
rolls the row back; what the provider created before a later failure is undone by the caller
(`sign_up_compensated`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from db.ids import DIRECTORY_SHARD, new_id
from subgraphs.kernel.auth import InvalidToken, TokenVerifier
from subgraphs.kernel.errors import (
    AuthenticationFailed,
    Conflict,
    ErrorCode,
    NotFound,
    ValidationFailed,
)
from subgraphs.kernel.events.catalogue import PresenceChanged
from subgraphs.kernel.logging import AUDIT_LOGGER
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web import presence
from subgraphs.kernel.web.validation import clean_text
from subgraphs.users import repository, totp
from subgraphs.users.identity import IdentityProvider, SignedIn, wrong_credentials, wrong_totp
from subgraphs.users.models import UserRow
from subgraphs.users.throttle import SignInThrottle

# Accounts in the audit stream (docs/logging.md); e-mail, username and address are tokenised there.
audit_log = logging.getLogger(AUDIT_LOGGER)

USERNAME_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.]{0,30}[A-Za-z0-9_])?$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
STATUSES = ("ACTIVE", "INACTIVE", "SLEEPING", "DO_NOT_DISTURB", "MYSTERIOUS")
LANGUAGES = ("EN", "FR")
SEARCH_PREFIX_RE = re.compile(r"^[a-z0-9_.]{1,32}$")


@dataclass(frozen=True)
class SignUpData:
    first_name: str
    last_name: str
    username: str
    email: str
    password: str
    avatar_key: str | None = None  # already stored (media/) when the sign-up starts


@dataclass(frozen=True)
class AuthResult:
    access_token: str
    refresh_token: str
    expires_in: int
    user: UserRow


@dataclass(frozen=True)
class TotpSetup:
    secret: str  # as the user types it (totp.display_secret), not as stored
    uri: str
    qr_code: str


# --- rules of input ---------------------------------------------------------------------------------


def validate_username(raw: str) -> str:
    username = raw.strip()
    if len(username) < 2:
        raise ValidationFailed(
            "Username must be at least 2 characters.", code=ErrorCode.TOO_SHORT, field="username"
        )
    if len(username) > 32:
        raise ValidationFailed(
            "Username must be at most 32 characters.", code=ErrorCode.TOO_LONG, field="username"
        )
    if not USERNAME_RE.match(username):
        raise ValidationFailed(
            "Username may contain letters, digits, '_' and '.', and may not start or end with '.'.",
            code=ErrorCode.INVALID_FORMAT,
            field="username",
        )
    return username


def validate_email(raw: str) -> str:
    email = raw.strip().lower()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise ValidationFailed("Enter a valid e-mail address.", code=ErrorCode.INVALID_FORMAT, field="email")
    return email


def validate_password(password: str, *, username: str, email: str, field: str = "password") -> str:
    if len(password) < 8:
        raise ValidationFailed(
            "Password must be at least 8 characters.", code=ErrorCode.WEAK_PASSWORD, field=field
        )
    if len(password) > 128:
        raise ValidationFailed(
            "Password must be at most 128 characters.", code=ErrorCode.TOO_LONG, field=field
        )
    lowered = password.lower()
    if len(set(password)) < 4 or lowered in (username.lower(), email, email.split("@")[0]):
        raise ValidationFailed("Choose a less guessable password.", code=ErrorCode.WEAK_PASSWORD, field=field)
    return password


def _taken_username() -> Conflict:
    return Conflict("That username is taken.", code=ErrorCode.USERNAME_TAKEN, field="username")


def _taken_email() -> Conflict:
    # Saying so reveals that the address has an account; sign-up forms everywhere accept that trade-off.
    return Conflict("An account with that e-mail already exists.", code=ErrorCode.EMAIL_TAKEN, field="email")


async def _check_free(session: Any, username: str, email: str, *, exclude: int | None = None) -> None:
    username_taken, email_taken = await repository.username_or_email_taken(
        session, username.lower(), email, exclude=exclude
    )
    if username_taken:
        raise _taken_username()
    if email_taken:
        raise _taken_email()


async def _flush_user(session: Any, user: UserRow, *, new: bool) -> None:
    if not await repository.save_user(session, user, new=new):
        raise Conflict(
            "That username or e-mail was just taken.", code=ErrorCode.ALREADY_EXISTS, field="username"
        )


def _result(signed_in: SignedIn, user: UserRow) -> AuthResult:
    tokens = signed_in.tokens
    return AuthResult(tokens.access_token, tokens.refresh_token, tokens.expires_in, user)


async def _user(uow: UnitOfWork, user_id: int) -> UserRow:
    found = (await repository.users_by_ids(uow.directory(), [user_id])).get(user_id)
    if found is None:
        raise NotFound("No such user.", field="id")
    return found


# --- accounts and sessions --------------------------------------------------------------------------


async def sign_up(
    uow: UnitOfWork, provider: IdentityProvider, data: SignUpData, created: list[UserRow]
) -> AuthResult:
    """Store the Beep user, create the identity (with `beep_user_id`), sign in. `created` receives the
    user once the provider holds an identity for it, for the caller to undo if anything after fails."""
    first_name = clean_text(data.first_name, "firstName", min_len=1, max_len=64)
    last_name = clean_text(data.last_name, "lastName", min_len=1, max_len=64)
    username = validate_username(data.username)
    email = validate_email(data.email)
    password = validate_password(data.password, username=username, email=email)
    session = uow.directory()
    await _check_free(session, username, email)
    user = UserRow(
        id=new_id(DIRECTORY_SHARD),
        username=username,
        username_key=username.lower(),
        email=email,
        password_hash="",
        first_name=first_name,
        last_name=last_name,
        created_at=datetime.now(UTC),
        bio="",
        status="ACTIVE",
        language=None,
        avatar_key=data.avatar_key,
    )
    await _flush_user(session, user, new=True)
    await provider.create_identity(user, password)
    created.append(user)
    await _flush_user(session, user, new=False)
    return _result(await provider.sign_in(uow, email, password, None), user)


async def sign_up_compensated(
    uow: UnitOfWork, provider: IdentityProvider, data: SignUpData, commit: Callable[[], Any]
) -> AuthResult:
    """`sign_up` in the caller's transaction (`commit` wraps it); if it fails once the provider holds an
    identity (the commit included), the identity is deleted again: no half-created account remains."""
    created: list[UserRow] = []
    try:
        async with commit():
            result = await sign_up(uow, provider, data, created)
    except BaseException:
        for user in created:
            await provider.delete_identity(user)
        raise
    for user in created:
        audit_log.info(
            "account created",
            extra={
                "action": "ACCOUNT_CREATE",
                "user_id": str(user.id),
                "username": user.username,
                "email": user.email,
            },
        )
    return result


async def sign_in(
    uow: UnitOfWork,
    provider: IdentityProvider,
    throttle: SignInThrottle,
    credentials: tuple[str, str],
    second_factor: tuple[str | None, str | None],
    address: str | None,
) -> AuthResult:
    email, password = credentials
    totp_code, recovery_code = second_factor
    await throttle.check(email, address)
    try:
        if recovery_code:
            signed_in = await _sign_in_with_recovery_code(uow, provider, email, password, recovery_code)
        else:
            signed_in = await provider.sign_in(uow, email, password, totp_code)
    except AuthenticationFailed as error:
        if error.code != ErrorCode.TOTP_REQUIRED:  # the password was right: not a guess
            await throttle.failed(email, address)
            audit_log.warning(
                "sign-in failed",
                extra={"action": "SIGN_IN_FAIL", "code": error.code.value, "email": email, "ip": address},
            )
        raise
    await throttle.succeeded(email)
    return await _signed_in_user(uow, provider, signed_in)


async def _sign_in_with_recovery_code(
    uow: UnitOfWork, provider: IdentityProvider, email: str, password: str, code: str
) -> SignedIn:
    signed_in = await provider.sign_in_without_totp(uow, email, password)
    user = await repository.user_by_email(uow.directory(), email.strip().lower())
    remaining = totp.consume_recovery_code(user.recovery_code_hashes if user else None, code)
    if user is None or remaining is None:
        await provider.sign_out(uow, signed_in.tokens.refresh_token)
        raise wrong_totp("recoveryCode")
    user.recovery_code_hashes = remaining
    return signed_in


async def _signed_in_user(uow: UnitOfWork, provider: IdentityProvider, signed_in: SignedIn) -> AuthResult:
    if signed_in.user_id is None:
        # First sign-in of a brokered identity (LDAP through Keycloak): provision, then a token that says so.
        provisioned = await _provision(uow, provider, signed_in.claims)
        return _result(await provider.refresh(uow, signed_in.tokens.refresh_token), provisioned)
    found = (await repository.users_by_ids(uow.directory(), [signed_in.user_id])).get(signed_in.user_id)
    if found is None:  # an identity whose Beep user was deleted
        await provider.sign_out(uow, signed_in.tokens.refresh_token)
        raise wrong_credentials()
    return _result(signed_in, found)


async def refresh(uow: UnitOfWork, provider: IdentityProvider, refresh_token: str) -> AuthResult:
    return await _signed_in_user(uow, provider, await provider.refresh(uow, refresh_token))


async def sign_out(uow: UnitOfWork, provider: IdentityProvider, refresh_token: str) -> None:
    await provider.sign_out(uow, refresh_token)


async def sign_out_everywhere(uow: UnitOfWork, provider: IdentityProvider, user_id: int) -> None:
    await provider.sign_out_everywhere(uow, await _user(uow, user_id))


# --- brokered identities ----------------------------------------------------------------------------


async def _free_username(uow: UnitOfWork, wanted: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_.]", "", wanted).strip(".")[:28] or "user"
    base = base if len(base) >= 2 else f"{base}_"
    for attempt in range(50):
        candidate = base if attempt == 0 else f"{base[:26]}{attempt}"
        taken, _ = await repository.username_or_email_taken(uow.directory(), candidate.lower(), "")
        if not taken:
            return candidate
    return f"user{new_id(DIRECTORY_SHARD) % 10**8}"


async def _provision(uow: UnitOfWork, provider: IdentityProvider, claims: dict[str, Any]) -> UserRow:
    email = validate_email(str(claims.get("email") or ""))
    session = uow.directory()
    if await repository.user_by_email(session, email) is not None:
        # Someone else's Beep account has this address: linking silently would hand it over.
        raise _taken_email()
    wanted = str(claims.get("preferred_username") or email.split("@")[0])
    user = UserRow(
        id=new_id(DIRECTORY_SHARD),
        username=(username := await _free_username(uow, wanted)),
        username_key=username.lower(),
        email=email,
        password_hash="",
        first_name=str(claims.get("given_name") or username)[:64],
        last_name=str(claims.get("family_name") or "")[:64],
        created_at=datetime.now(UTC),
        bio="",
        status="ACTIVE",
        language=str(claims["locale"]).upper() if claims.get("locale") in ("en", "fr") else None,
    )
    await _flush_user(session, user, new=True)
    await provider.link(user, claims)
    await _flush_user(session, user, new=False)
    return user


async def complete_first_sign_in(
    uow: UnitOfWork, provider: IdentityProvider, verifier: TokenVerifier, access_token: str
) -> UserRow:
    """A valid token of the identity provider, perhaps without `beep_user_id` (first login through
    Google or LDAP in Keycloak's pages): its Beep user, provisioned from its claims when new."""
    try:
        claims = await verifier.verify_claims(access_token)
    except InvalidToken:
        raise AuthenticationFailed(
            "That sign-in token is not valid.", code=ErrorCode.INVALID_CREDENTIALS, field="accessToken"
        ) from None
    raw = claims.get("beep_user_id")
    if raw is not None and str(raw).isdigit():
        return await _user(uow, int(raw))
    if provider.name != "keycloak" or claims.get("iss") == verifier.issuer:
        raise AuthenticationFailed(
            "That sign-in token is not valid.", code=ErrorCode.INVALID_CREDENTIALS, field="accessToken"
        )
    return await _provision(uow, provider, claims)


# --- two-factor authentication ----------------------------------------------------------------------


async def begin_totp_setup(uow: UnitOfWork, provider: IdentityProvider, user_id: int) -> TotpSetup:
    user = await _user(uow, user_id)
    if await provider.totp_enabled(user):
        raise Conflict("Two-factor authentication is already on.", code=ErrorCode.TOTP_ALREADY_ENABLED)
    user.totp_pending_secret = totp.new_secret()
    uri = totp.provisioning_uri(user.totp_pending_secret, user.email)
    return TotpSetup(totp.display_secret(user.totp_pending_secret), uri, totp.qr_code_data_uri(uri))


async def confirm_totp(uow: UnitOfWork, provider: IdentityProvider, user_id: int, code: str) -> list[str]:
    """Turns two-factor on once the app shows the right code; the recovery codes, shown this once."""
    user = await _user(uow, user_id)
    if not user.totp_pending_secret:
        raise ValidationFailed("Start two-factor setup first.", code=ErrorCode.TOTP_NOT_ENABLED, field="code")
    step = totp.matching_step(user.totp_pending_secret, code, None)
    if step is None:
        raise wrong_totp("code")
    secret, user.totp_pending_secret = user.totp_pending_secret, None
    user.totp_last_step = step
    codes = totp.new_recovery_codes()
    user.recovery_code_hashes = totp.hash_recovery_codes(codes)
    await repository.flush(uow.directory())
    await provider.activate_totp(user, secret)
    return codes


async def disable_totp(
    uow: UnitOfWork, provider: IdentityProvider, user_id: int, password: str, code: str
) -> UserRow:
    user = await _user(uow, user_id)
    if not await provider.totp_enabled(user):
        raise ValidationFailed(
            "Two-factor authentication is off.", code=ErrorCode.TOTP_NOT_ENABLED, field="code"
        )
    if not await provider.check_totp(uow, user, password, code):
        raise wrong_totp("code")
    user.recovery_code_hashes = None
    await repository.flush(uow.directory())
    await provider.deactivate_totp(user)
    return user


# --- profile and settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileChanges:
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    bio: str | None = None
    status: str | None = None
    language: str | None = None
    audio_input_device_id: str | None = None
    video_input_device_id: str | None = None


def _device_id(raw: str, field: str) -> str | None:
    value = clean_text(raw, field, min_len=0, max_len=255)
    return value or None


async def update_profile(
    uow: UnitOfWork,
    provider: IdentityProvider,
    store: presence.PresenceStore,
    user_id: int,
    changes: ProfileChanges,
) -> UserRow:
    user = await _user(uow, user_id)
    synced = False  # whether the provider keeps a copy of something that changed
    if changes.first_name is not None:
        user.first_name = clean_text(changes.first_name, "firstName", min_len=1, max_len=64)
        synced = True
    if changes.last_name is not None:
        user.last_name = clean_text(changes.last_name, "lastName", min_len=1, max_len=64)
        synced = True
    if changes.username is not None and changes.username.strip() != user.username:
        username = validate_username(changes.username)
        taken, _ = await repository.username_or_email_taken(
            uow.directory(), username.lower(), "", exclude=user.id
        )
        if taken:
            raise _taken_username()
        user.username, user.username_key = username, username.lower()
        synced = True
    if changes.bio is not None:
        user.bio = clean_text(changes.bio, "bio", min_len=0, max_len=190, multiline=True)
    status_changed = changes.status is not None and changes.status != user.status
    if changes.status is not None:
        if changes.status not in STATUSES:
            raise ValidationFailed(
                f"Status must be one of {', '.join(STATUSES)}.", code=ErrorCode.INVALID_INPUT, field="status"
            )
        user.status = changes.status
    if changes.language is not None:
        if changes.language not in LANGUAGES:
            raise ValidationFailed(
                "Language must be EN or FR.", code=ErrorCode.INVALID_INPUT, field="language"
            )
        synced = synced or changes.language != user.language
        user.language = changes.language
    if changes.audio_input_device_id is not None:
        user.audio_input_device_id = _device_id(changes.audio_input_device_id, "audioInputDeviceId")
    if changes.video_input_device_id is not None:
        user.video_input_device_id = _device_id(changes.video_input_device_id, "videoInputDeviceId")
    await _flush_user(uow.directory(), user, new=False)
    if synced:
        await provider.sync_profile(user)
    if status_changed:
        # A chosen status reaches the same audience as connection changes (kernel/web/presence.py).
        online = user.id in await store.connected([user.id]) and user.status != presence.INVISIBLE_STATUS
        event = PresenceChanged(user.id, online, user.status)
        for topic in await presence.audience_topics(uow.directory(), user.id):
            uow.emit(topic, event)
    return user


async def _reauthenticated(
    uow: UnitOfWork, provider: IdentityProvider, user_id: int, password: str, field: str
) -> UserRow:
    """The user, once their current password is confirmed (sensitive changes ask for it again)."""
    user = await _user(uow, user_id)
    if not await provider.check_password(user, password):
        raise AuthenticationFailed("Wrong password.", code=ErrorCode.INVALID_CREDENTIALS, field=field)
    return user


async def change_email(
    uow: UnitOfWork, provider: IdentityProvider, user_id: int, email: str, password: str
) -> UserRow:
    user = await _reauthenticated(uow, provider, user_id, password, "password")
    new_email = validate_email(email)
    if new_email != user.email:
        _, taken = await repository.username_or_email_taken(uow.directory(), "", new_email, exclude=user.id)
        if taken:
            raise _taken_email()
        user.email = new_email
        await _flush_user(uow.directory(), user, new=False)
        await provider.sync_profile(user)
    return user


async def change_password(
    uow: UnitOfWork, provider: IdentityProvider, user_id: int, old_password: str, new_password: str
) -> UserRow:
    user = await _reauthenticated(uow, provider, user_id, old_password, "oldPassword")
    password = validate_password(new_password, username=user.username, email=user.email, field="newPassword")
    await provider.set_password(uow, user, password)
    return user


# --- pictures ---------------------------------------------------------------------------------------

PICTURE_SLOTS = ("avatar", "banner")


async def set_picture(
    uow: UnitOfWork, user_id: int, slot: str, key: str | None
) -> tuple[UserRow, str | None]:
    """Point the user's avatar or banner at a stored picture (None: remove it); the key it replaces."""
    if slot not in PICTURE_SLOTS:
        raise ValueError(f"unknown picture slot {slot!r}")
    user = await _user(uow, user_id)
    previous: str | None = getattr(user, f"{slot}_key")
    setattr(user, f"{slot}_key", key)
    await _flush_user(uow.directory(), user, new=False)
    return user, previous


# --- search -----------------------------------------------------------------------------------------


async def search_users(
    uow: UnitOfWork, prefix: str, first: int, after: int | None
) -> tuple[list[UserRow], bool]:
    """Users whose username starts with `prefix` (case-insensitive), by username; one extra row tells
    whether there is a next page."""
    cleaned = prefix.strip().lower()
    if not SEARCH_PREFIX_RE.match(cleaned):
        raise ValidationFailed(
            "Search by the start of a username: 1-32 letters, digits, '_' or '.'.",
            code=ErrorCode.INVALID_FORMAT,
            field="prefix",
        )
    rows = await repository.search_by_username_prefix(uow.directory(), cleaned[:32], first + 1, after)
    return rows[:first], len(rows) > first
