"""Short-lived signed download URLs.

A URL is `<base_url>/<key>?exp=<unix seconds>&disp=<inline|attachment>[&fn=<name>]&kid=<key id>&sig=<mac>`
where `mac` is HMAC-SHA256, with the secret named by `kid`, over a versioned, length-prefixed encoding of
(kid, key, exp, disp, fn). Holding the URL is the authorisation, so URLs are minted only after an access
check and live minutes, not days. Rotation: sign with the current key id, verify with any key still held.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
import secrets
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, cast
from urllib.parse import quote, urlencode

from media.errors import SignatureExpired, SignatureInvalid
from media.keys import validate_key

Disposition = Literal["inline", "attachment"]
DISPOSITIONS: frozenset[str] = frozenset({"inline", "attachment"})
MIN_SECRET_BYTES = 32
MAX_FILENAME_LENGTH = 255
_KID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_EXP_RE = re.compile(r"[0-9]{1,12}")  # not int(): it accepts "١٢", " 12" and "1_2"
_SIG_RE = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes, unpadded base64url
_DOMAIN = b"beep-media-url-v1"


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified URL allows: this key, until `expires_at`, shown as `disposition`."""

    key: str
    expires_at: int
    disposition: Disposition
    filename: str | None
    remaining_seconds: int


class UrlSigner:
    def __init__(
        self,
        keys: Mapping[str, bytes],
        current_kid: str,
        *,
        base_url: str = "/files",
        max_ttl: timedelta = timedelta(hours=24),
        clock: Callable[[], float] = time.time,
    ) -> None:
        for kid, secret in keys.items():
            if _KID_RE.fullmatch(kid) is None:
                raise ValueError(f"signing key id {kid!r} must match {_KID_RE.pattern}")
            if len(secret) < MIN_SECRET_BYTES:
                raise ValueError(f"signing key {kid!r} must be at least {MIN_SECRET_BYTES} bytes")
        if current_kid not in keys:
            raise ValueError(f"the current signing key id {current_kid!r} is not among the keys")
        self._keys = dict(keys)
        self._current_kid = current_kid
        self._base_url = base_url.rstrip("/")
        self._max_ttl = max_ttl
        self._clock = clock

    @classmethod
    def from_spec(
        cls,
        spec: str,
        *,
        base_url: str = "/files",
        max_ttl: timedelta = timedelta(hours=24),
        clock: Callable[[], float] = time.time,
    ) -> UrlSigner:
        """`kid:base64url-secret[,kid:secret...]`: the first key signs, all of them verify."""
        keys: dict[str, bytes] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            kid, sep, encoded = part.partition(":")
            if not sep or kid in keys:
                raise ValueError("expected comma-separated, distinct kid:secret pairs")
            keys[kid] = _b64decode(encoded.strip())
        if not keys:
            raise ValueError("no signing key configured")
        return cls(keys, next(iter(keys)), base_url=base_url, max_ttl=max_ttl, clock=clock)

    def now(self) -> float:
        return self._clock()

    def sign(
        self,
        key: str,
        expires_in: timedelta | int,
        disposition: Disposition = "attachment",
        *,
        filename: str | None = None,
        align: int = 1,
    ) -> str:
        """A relative (or `base_url`-absolute) URL to download `key` for the next `expires_in`; with
        `align`, the expiry is rounded up to a multiple of it (valid up to `align` seconds longer)."""
        validate_key(key)
        ttl = expires_in if isinstance(expires_in, timedelta) else timedelta(seconds=expires_in)
        if not timedelta(0) < ttl <= self._max_ttl:
            raise ValueError(f"expires_in must be positive and at most {self._max_ttl}")
        if disposition not in DISPOSITIONS:
            raise ValueError(f"disposition must be one of {sorted(DISPOSITIONS)}")
        name = safe_filename(filename) if filename is not None else None
        exp = str(math.ceil(self._clock() + ttl.total_seconds()))
        if align > 1:  # the same URL for `align` seconds, so browsers and proxies can cache it
            exp = str(-(-int(exp) // align) * align)
        params = {"exp": exp, "disp": disposition}
        if name:
            params["fn"] = name
        params["kid"] = self._current_kid
        params["sig"] = self._mac(self._current_kid, key, exp, disposition, name or "")
        return f"{self._base_url}/{key}?{urlencode(params, quote_via=quote)}"

    def verify(self, key: str, params: Mapping[str, str]) -> Grant:
        """The grant of an authentic, unexpired URL; `SignatureInvalid` or `SignatureExpired` otherwise."""
        kid, exp, disp, sig = (params.get(name, "") for name in ("kid", "exp", "disp", "sig"))
        filename = params.get("fn", "")
        if (
            kid not in self._keys
            or _EXP_RE.fullmatch(exp) is None
            or disp not in DISPOSITIONS
            or _SIG_RE.fullmatch(sig) is None
        ):
            raise SignatureInvalid("malformed or unknown signature")
        expected = self._mac(kid, key, exp, disp, filename)
        if not hmac.compare_digest(expected.encode("ascii"), sig.encode("ascii")):
            raise SignatureInvalid("signature does not match")
        # Only an authentic URL learns it has expired; a tampered `exp` is simply invalid.
        remaining = int(exp) - self._clock()
        if remaining <= 0:
            raise SignatureExpired("signed URL has expired")
        return Grant(
            key=key,
            expires_at=int(exp),
            disposition=cast(Disposition, disp),
            filename=filename or None,
            remaining_seconds=int(remaining),
        )

    def _mac(self, kid: str, key: str, exp: str, disposition: str, filename: str) -> str:
        message = bytearray(_DOMAIN)
        for field in (kid, key, exp, disposition, filename):
            encoded = field.encode("utf-8", "surrogatepass")
            message += len(encoded).to_bytes(4, "big") + encoded  # length prefixes: no field can bleed
        digest = hmac.new(self._keys[kid], bytes(message), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def generate_secret() -> str:
    """A fresh base64url secret for `UrlSigner.from_spec` (e.g. `beep media-key` could print one)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(MIN_SECRET_BYTES)).rstrip(b"=").decode("ascii")


def safe_filename(name: str) -> str:
    """A user's file name made harmless for a download header: NFC, no controls, separators or quotes."""
    name = unicodedata.normalize("NFC", name)
    cleaned = "".join(
        "_" if unicodedata.category(ch).startswith("C") or ch in '/\\"' else ch for ch in name
    ).strip(" .")
    return cleaned[:MAX_FILENAME_LENGTH]


def _b64decode(encoded: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError) as error:
        raise ValueError("signing secrets must be base64url") from error
