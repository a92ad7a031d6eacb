"""Personal data in logs, tokenised before it is written: e-mail addresses, usernames, IP addresses and
message text become `pii_<base64url>` tokens that operators holding the key can turn back into the value.

The scheme is deterministic authenticated encryption, AES-SIV (RFC 5297) with a 512-bit key: the same
value always gives the same token, so a token found in one line can be searched for in every other line
(and `beep logs tokenize` gives the token to search for), while the value itself stays unreadable without
the key, and a token made with another key, or altered, is refused rather than decrypted into garbage. The
router (router/logtokens.ts) implements the same scheme with the same key, so its tokens match these.

Logs become tokenised in the logging layer (kernel/logging.py), not at call sites: fields named for
personal data (PERSONAL_FIELDS) or wrapped in `Personal(...)`, and e-mail and IP addresses anywhere in free
text (messages, other fields, stack traces), so a call site cannot forget.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

PREFIX = "pii_"
# Binds tokens to this scheme: a value encrypted with the same key for another purpose is no token.
_ASSOCIATED = [b"beep-log-token-v1"]
KEY_BYTES = 64  # AES-SIV-256: one 256-bit key for S2V (CMAC), one for CTR
MEMO_SIZE = 4096  # tokens remembered per tokenizer

# Structured log fields that hold personal data whatever their value looks like.
PERSONAL_FIELDS = frozenset(
    {"email", "username", "display_name", "first_name", "last_name", "ip", "client_ip", "text"}
)

TOKEN_RE = re.compile(r"\bpii_[A-Za-z0-9_-]{22,}")
# Loose on purpose (a missed address is clear text in a log; a false match is only a token).
_EMAIL_RE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_IPV4_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
# Candidates only: ipaddress decides (a time such as 12:04:31 is no IPv6 address).
_IPV6_RE = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%\w+)?(?![\w:])")


class LogTokenError(ValueError):
    """A bad key (LOG_TOKEN_KEY_INVALID) or a token this key did not make (LOG_TOKEN_INVALID)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Personal:
    """Marks one `extra=` value as personal data whatever its field is called: `extra={"to": Personal(x)}`."""

    value: object


def generate_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LogTokenizer:
    def __init__(self, key: str) -> None:
        try:
            raw = _b64decode(key.strip())
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != KEY_BYTES:
            raise LogTokenError(
                "LOG_TOKEN_KEY_INVALID",
                f"BEEP_LOG_TOKEN_KEY must be {KEY_BYTES} random bytes in base64url (`beep logs new-key`).",
            )
        self._siv = AESSIV(raw)
        # Tokens already made, by value (deterministic): every access-log line tokenises its client
        # address, and addresses and names repeat. Bounded; cleared when full.
        self._made: dict[str, str] = {}

    def token(self, value: str) -> str:
        if not value:
            return value  # AES-SIV takes no empty plaintext; an empty value discloses nothing
        made = self._made.get(value)
        if made is not None:
            return made
        sealed = self._siv.encrypt(value.encode(), _ASSOCIATED)
        token = PREFIX + base64.urlsafe_b64encode(sealed).decode().rstrip("=")
        if len(self._made) >= MEMO_SIZE:
            self._made.clear()
        self._made[value] = token
        return token

    def reveal(self, token: str) -> str:
        body = token.strip().removeprefix(PREFIX)
        try:
            return self._siv.decrypt(_b64decode(body), _ASSOCIATED).decode()
        except (InvalidTag, binascii.Error, ValueError) as error:
            raise LogTokenError("LOG_TOKEN_INVALID", "Not a token made with this key.") from error

    def scrub(self, text: str) -> str:
        """E-mail and IP addresses in free text replaced by their tokens (loopback addresses are kept:
        they name this machine, not a person)."""
        if "@" in text:
            text = _EMAIL_RE.sub(lambda m: self.token(m.group()), text)
        text = _IPV4_RE.sub(self._address, text)
        return _IPV6_RE.sub(self._address, text) if "::" in text or text.count(":") >= 3 else text

    def _address(self, match: re.Match[str]) -> str:
        found = match.group()
        try:
            address = ipaddress.ip_address(found.split("%", 1)[0])
        except ValueError:
            return found
        return found if address.is_loopback or address.is_unspecified else self.token(found)

    def reveal_text(self, text: str) -> str:
        """Every token in `text` this key made replaced by its value; others left as they are."""

        def one(match: re.Match[str]) -> str:
            try:
                return self.reveal(match.group())
            except LogTokenError:
                return match.group()

        return TOKEN_RE.sub(one, text)
