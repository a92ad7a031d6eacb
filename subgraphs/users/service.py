"""Rules of the users context: sign-up, sign-in, sessions. Writes through the repository; never commits."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from db.ids import new_id
from subgraphs.kernel.errors import AuthenticationFailed, Conflict, ErrorCode, ValidationFailed
from subgraphs.kernel.uow import UnitOfWork
from subgraphs.kernel.validation import clean_text
from subgraphs.users import repository
from subgraphs.users.issuer import Issuer
from subgraphs.users.models import UserRow
from subgraphs.users.passwords import hash_password, verify_password

USERNAME_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.]{0,30}[A-Za-z0-9_])?$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
DIRECTORY_SHARD = 0  # users are global; their IDs use shard 0 and live in the directory


@dataclass(frozen=True)
class SignUpData:
    first_name: str
    last_name: str
    username: str
    email: str
    password: str


@dataclass(frozen=True)
class AuthResult:
    access_token: str
    refresh_token: str
    expires_in: int
    user: UserRow


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


def validate_password(password: str, *, username: str, email: str) -> str:
    if len(password) < 8:
        raise ValidationFailed(
            "Password must be at least 8 characters.", code=ErrorCode.WEAK_PASSWORD, field="password"
        )
    if len(password) > 128:
        raise ValidationFailed(
            "Password must be at most 128 characters.", code=ErrorCode.TOO_LONG, field="password"
        )
    lowered = password.lower()
    if len(set(password)) < 4 or lowered in (username.lower(), email, email.split("@")[0]):
        raise ValidationFailed(
            "Choose a less guessable password.", code=ErrorCode.WEAK_PASSWORD, field="password"
        )
    return password


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _issue_session(uow: UnitOfWork, issuer: Issuer, user: UserRow, refresh_ttl: int) -> AuthResult:
    refresh_token = secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + timedelta(seconds=refresh_ttl)
    await repository.insert_refresh_session(
        uow.directory(), new_id(DIRECTORY_SHARD), user.id, _hash_token(refresh_token), expires_at
    )
    return AuthResult(issuer.access_token(user.id, user.username), refresh_token, issuer.access_ttl, user)


async def sign_up(uow: UnitOfWork, issuer: Issuer, data: SignUpData, refresh_ttl: int) -> AuthResult:
    first_name = clean_text(data.first_name, "firstName", min_len=1, max_len=64)
    last_name = clean_text(data.last_name, "lastName", min_len=1, max_len=64)
    username = validate_username(data.username)
    email = validate_email(data.email)
    password = validate_password(data.password, username=username, email=email)
    session = uow.directory()
    username_taken, email_taken = await repository.username_or_email_taken(session, username.lower(), email)
    if username_taken:
        raise Conflict("That username is taken.", code=ErrorCode.USERNAME_TAKEN, field="username")
    if email_taken:
        # Saying so reveals that the address has an account; sign-up forms everywhere accept that trade-off
        # (the alternative is an e-mail round-trip, which the identity issue may add).
        raise Conflict(
            "An account with that e-mail already exists.", code=ErrorCode.EMAIL_TAKEN, field="email"
        )
    user = UserRow(
        id=new_id(DIRECTORY_SHARD),
        username=username,
        username_key=username.lower(),
        email=email,
        password_hash=await hash_password(password),
        first_name=first_name,
        last_name=last_name,
        created_at=datetime.now(UTC),
    )
    if not await repository.insert_user(session, user):
        raise Conflict(
            "That username or e-mail was just taken.", code=ErrorCode.ALREADY_EXISTS, field="username"
        )
    return await _issue_session(uow, issuer, user, refresh_ttl)


async def sign_in(uow: UnitOfWork, issuer: Issuer, email: str, password: str, refresh_ttl: int) -> AuthResult:
    normalized = email.strip().lower()[:254]
    user = await repository.user_by_email(uow.directory(), normalized)
    ok = await verify_password(user.password_hash if user else None, password[:1024])
    if user is None or not ok:
        raise AuthenticationFailed("Wrong e-mail or password.")
    return await _issue_session(uow, issuer, user, refresh_ttl)
