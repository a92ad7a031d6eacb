from __future__ import annotations

import pytest

from subgraphs.kernel.errors import ErrorCode, ValidationFailed
from subgraphs.kernel.web.validation import clean_text
from subgraphs.users.service import validate_email, validate_password, validate_username


def code_of(call: object) -> ErrorCode:
    with pytest.raises(ValidationFailed) as caught:
        call()  # type: ignore[operator]
    return caught.value.code


def test_clean_text_trims_and_normalises() -> None:
    assert clean_text("  Cafe\u0301  ", "name", min_len=1, max_len=10) == "Café"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", ErrorCode.REQUIRED),
        ("   ", ErrorCode.REQUIRED),
        ("x" * 101, ErrorCode.TOO_LONG),
        ("x" * 100_000, ErrorCode.TOO_LONG),
        ("a\x00b", ErrorCode.INVALID_FORMAT),
        ("a\nb", ErrorCode.INVALID_FORMAT),
    ],
)
def test_clean_text_refuses(value: str, code: ErrorCode) -> None:
    assert code_of(lambda: clean_text(value, "name", min_len=1, max_len=100)) == code


def test_multiline_allows_newlines() -> None:
    assert clean_text("a\nb", "content", min_len=1, max_len=10, multiline=True) == "a\nb"


@pytest.mark.parametrize("name", ["ab", "Ada_L", "a.b", "x" * 32])
def test_valid_usernames(name: str) -> None:
    assert validate_username(name) == name


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("a", ErrorCode.TOO_SHORT),
        ("x" * 33, ErrorCode.TOO_LONG),
        (".ada", ErrorCode.INVALID_FORMAT),
        ("ada.", ErrorCode.INVALID_FORMAT),
        ("a b", ErrorCode.INVALID_FORMAT),
        ("<script>", ErrorCode.INVALID_FORMAT),
    ],
)
def test_invalid_usernames(name: str, code: ErrorCode) -> None:
    assert code_of(lambda: validate_username(name)) == code


def test_email_is_normalised() -> None:
    assert validate_email("  Ada@Example.COM ") == "ada@example.com"


@pytest.mark.parametrize("email", ["", "ada", "ada@", "@example.com", "a b@example.com", "x" * 250 + "@e.io"])
def test_invalid_emails(email: str) -> None:
    assert code_of(lambda: validate_email(email)) == ErrorCode.INVALID_FORMAT


@pytest.mark.parametrize("password", ["short", "aaaaaaaaaa", "adalovelace", "x" * 129])
def test_weak_or_absurd_passwords(password: str) -> None:
    assert code_of(lambda: validate_password(password, username="adalovelace", email="ada@example.com")) in (
        ErrorCode.WEAK_PASSWORD,
        ErrorCode.TOO_LONG,
    )
