"""Rules of the identity context that need no services: languages, one-time codes, throttling."""

from __future__ import annotations

import base64
import json
import re
import time

import pytest

from subgraphs.kernel import i18n
from subgraphs.kernel.errors import AuthenticationFailed, ErrorCode
from subgraphs.users import totp
from subgraphs.users.throttle import MAX_FAILURES_PER_ACCOUNT, MemoryCounters, SignInThrottle, client_address


@pytest.mark.parametrize(
    ("locale", "header", "expected"),
    [
        (None, None, "en"),
        (None, "fr-CA,fr;q=0.9,en;q=0.8", "fr"),
        (None, "de, en;q=0.9, fr;q=0.95", "fr"),
        (None, "de", "en"),
        (None, "fr;q=bogus, en", "en"),
        ("fr", "en", "fr"),
        ("en", "fr", "en"),
        ("es", "fr", "fr"),
    ],
)
def test_language_negotiation(locale: str | None, header: str | None, expected: str) -> None:
    assert i18n.negotiate(locale, header) == expected


def test_translation_of_exact_and_templated_messages() -> None:
    assert i18n.translate("Wrong e-mail or password.", "fr") == "Adresse e-mail ou mot de passe incorrect."
    assert (
        i18n.translate("bio must be at most 190 characters.", "fr")
        == "bio doit contenir au plus 190 caractères."
    )
    assert i18n.translate("You need the Manage Roles permission in this channel.", "fr") == (
        "Il vous faut la permission « Gérer les rôles » dans ce salon."
    )
    assert i18n.translate("Something nobody translated.", "fr") == "Something nobody translated."
    assert i18n.translate("Wrong e-mail or password.", "en") == "Wrong e-mail or password."


def test_codes_work_once_and_only_near_now() -> None:
    secret = totp.new_secret()
    now_step = int(time.time()) // totp.PERIOD
    code = totp.current_code(secret)
    step = totp.matching_step(secret, code, None)
    assert step is not None and abs(step - now_step) <= 1
    assert totp.matching_step(secret, code, step) is None  # replayed
    old = totp.current_code(secret, time.time() - 5 * totp.PERIOD)
    assert totp.matching_step(secret, old, None) is None or old == code
    assert totp.matching_step(secret, "12345", None) is None
    assert totp.matching_step(secret, "abcdef", None) is None
    assert "secret=" in totp.provisioning_uri(secret, "ada@example.com")


def test_the_secret_shown_is_the_stored_one_in_base32_groups() -> None:
    """A secret stored before the base32 display (the raw key bytes) keeps producing the same codes."""
    stored = "NjUOxOkoa8keuMQdkvAD"  # the format of every enrolled user's secret
    shown = totp.display_secret(stored)
    assert re.fullmatch(r"[A-Z2-7]{4}( [A-Z2-7]{4}){7}", shown), shown
    assert base64.b32decode(shown.replace(" ", "")) == stored.encode()
    assert f"secret={shown.replace(' ', '')}" in totp.provisioning_uri(stored, "ada@example.com")


def test_recovery_codes_are_stored_hashed_and_work_once() -> None:
    codes = totp.new_recovery_codes()
    stored = totp.hash_recovery_codes(codes)
    assert not any(code in stored for code in codes)
    remaining = totp.consume_recovery_code(stored, codes[3].upper())
    assert remaining is not None and len(json.loads(remaining)) == 9
    assert totp.consume_recovery_code(remaining, codes[3]) is None
    assert totp.consume_recovery_code(None, codes[0]) is None


async def test_throttle_locks_an_account_then_clears_on_success() -> None:
    throttle = SignInThrottle(MemoryCounters())
    for _ in range(MAX_FAILURES_PER_ACCOUNT):
        await throttle.check("a@example.com", "192.0.2.1")
        await throttle.failed("a@example.com", "192.0.2.1")
    with pytest.raises(AuthenticationFailed) as locked:
        await throttle.check("A@example.com", "192.0.2.9")
    assert locked.value.code == ErrorCode.RATE_LIMITED
    await throttle.check("b@example.com", "192.0.2.1")  # another account, same address: allowed
    await throttle.succeeded("a@example.com")
    await throttle.check("a@example.com", "192.0.2.1")


def test_client_address_is_the_last_forwarded_entry() -> None:
    assert client_address("203.0.113.9, 10.0.0.1", "127.0.0.1") == "10.0.0.1"
    assert client_address(None, "127.0.0.1") == "127.0.0.1"
    assert client_address(" ", None) is None
