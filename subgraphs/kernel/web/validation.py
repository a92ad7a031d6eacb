"""Input rules shared by every context: text lengths, control characters."""

from __future__ import annotations

import unicodedata

from subgraphs.kernel.errors import ErrorCode, ValidationFailed


def clean_text(value: str, field: str, *, min_len: int, max_len: int, multiline: bool = False) -> str:
    """Trim, normalise (NFC), refuse control characters, enforce length in characters."""
    if len(value) > max_len * 4:  # refuse absurd input before normalising it
        raise ValidationFailed(
            f"{field} must be at most {max_len} characters.", code=ErrorCode.TOO_LONG, field=field
        )
    text = unicodedata.normalize("NFC", value).strip()
    allowed = {"\n", "\t"} if multiline else set()
    if any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in text):
        raise ValidationFailed(
            f"{field} contains control characters.", code=ErrorCode.INVALID_FORMAT, field=field
        )
    if len(text) < min_len:
        code = ErrorCode.REQUIRED if not text else ErrorCode.TOO_SHORT
        message = f"{field} is required." if not text else f"{field} must be at least {min_len} characters."
        raise ValidationFailed(message, code=code, field=field)
    if len(text) > max_len:
        raise ValidationFailed(
            f"{field} must be at most {max_len} characters.", code=ErrorCode.TOO_LONG, field=field
        )
    return text
