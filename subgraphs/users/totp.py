"""Time-based one-time codes (RFC 6238: SHA-1, 6 digits, 30 s) and recovery codes.

The secret is 20 random letters and digits used as raw key bytes: Keycloak's OTP credential stores its
secret that way, so one secret format serves both identity providers; authenticator apps get it
base32-encoded, in the otpauth URI and typed by hand (`display_secret`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import string
import time

import pyotp
import segno

ISSUER_NAME = "Beep"
PERIOD = 30
DIGITS = 6
RECOVERY_CODES = 10
_ALPHABET = string.ascii_letters + string.digits


def new_secret() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(20))


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(base64.b32encode(secret.encode()).decode(), digits=DIGITS, interval=PERIOD)


def display_secret(secret: str) -> str:
    """The key an authenticator app asks for: the secret's bytes in base32 (the otpauth URI's `secret`),
    in groups of four for reading and typing (20 bytes: 32 characters, 8 groups, no padding)."""
    encoded = base64.b32encode(secret.encode()).decode().rstrip("=")
    return " ".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def provisioning_uri(secret: str, account: str) -> str:
    return _totp(secret).provisioning_uri(name=account, issuer_name=ISSUER_NAME)


def qr_code_data_uri(uri: str) -> str:
    """A PNG of the otpauth URI, as a data: URI an <img> can show."""
    return str(segno.make(uri, error="m").png_data_uri(scale=5, border=4))


def current_code(secret: str, at: float | None = None) -> str:
    return _totp(secret).at(int(at if at is not None else time.time()))


def matching_step(secret: str, code: str, last_step: int | None) -> int | None:
    """The time step a code belongs to (now, or one step either side for clock drift), if it is newer than
    the last one accepted: a code works once."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    now_step = int(time.time()) // PERIOD
    totp = _totp(secret)
    for step in (now_step, now_step - 1, now_step + 1):
        if (last_step is None or step > last_step) and hmac.compare_digest(totp.at(step * PERIOD), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Ten codes like `k3f9-2hx7`, each usable once in place of a one-time code."""
    alphabet = string.ascii_lowercase + string.digits
    return [
        "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(2))
        for _ in range(RECOVERY_CODES)
    ]


def _hash_code(code: str) -> str:
    return hashlib.sha256(code.strip().lower().encode()).hexdigest()


def hash_recovery_codes(codes: list[str]) -> str:
    return json.dumps([_hash_code(c) for c in codes])


def consume_recovery_code(stored: str | None, code: str) -> str | None:
    """The stored list without `code`, or None when `code` is not one of them."""
    hashes: list[str] = json.loads(stored) if stored else []
    wanted = _hash_code(code)
    if not any(hmac.compare_digest(h, wanted) for h in hashes):
        return None
    return json.dumps([h for h in hashes if h != wanted])
