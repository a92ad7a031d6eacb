"""Who is calling: access tokens verified against the issuer's JWKS (built-in issuer or Keycloak).

The router verifies tokens too; subgraphs verify again (defence in depth: a subgraph reachable without
the router must not trust an unverified header).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from jwt import PyJWK

log = logging.getLogger("beep.auth")


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str | None
    token_id: str | None
    expires_at: int
    locale: str | None = None  # the user's language setting, when the token carries it
    issuer: str | None = None
    # Acting for this user on behalf of the router's fan-out tier (kernel/web/internal.py): the stream it
    # opens is shared by many sockets, so it is not the user's own connection (no presence).
    fanout: bool = False


class InvalidToken(Exception):
    pass


def bearer_token(header_value: str | None) -> str | None:
    if not header_value:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Authorization must be 'Bearer <token>'")
    return token.strip()


# The keys a WebSocket client may put its token under in connection_init, compared without case, in order
# of preference: ours, then the common forms of client libraries' examples (often a bare token).
CONNECTION_TOKEN_KEYS = ("authorization", "authtoken", "token")


def connection_authorization(params: Mapping[str, object]) -> object:
    """The Authorization value a connection_init payload carries, whatever its key ('Authorization',
    'authToken', 'token'...); a bare token gets the 'Bearer ' prefix. None when there is none."""
    by_key = {key.lower(): value for key, value in params.items() if value not in (None, "")}
    for wanted in CONNECTION_TOKEN_KEYS:
        value = by_key.get(wanted)
        if value is None:
            continue
        if wanted != "authorization" and isinstance(value, str) and " " not in value.strip():
            return f"Bearer {value.strip()}"
        return value
    return None


class JwksCache:
    """Keys fetched from the JWKS URL, refreshed when an unknown key id appears (rotation) at most every
    `min_refresh_seconds`, so a flood of forged key ids cannot hammer the issuer."""

    def __init__(self, url: str, *, min_refresh_seconds: float = 30.0, max_age_seconds: float = 3600.0):
        self.url = url
        self.min_refresh = min_refresh_seconds
        self.max_age = max_age_seconds
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> PyJWK:
        stale = time.monotonic() - self._fetched_at > self.max_age
        if kid not in self._keys or stale:
            await self._refresh(force=stale)
        found = self._keys.get(kid)
        if found is None:
            raise InvalidToken("unknown signing key")
        return found

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            if not force and time.monotonic() - self._fetched_at < self.min_refresh:
                return
            try:
                async with httpx.AsyncClient(timeout=5.0) as client:
                    response = await client.get(self.url)
                    response.raise_for_status()
                    document = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("JWKS fetch failed", extra={"url": self.url, "error": str(exc)})
                self._fetched_at = time.monotonic()
                return
            keys: dict[str, PyJWK] = {}
            for entry in document.get("keys", []):
                if entry.get("use", "sig") == "sig" and entry.get("kid"):
                    try:
                        keys[entry["kid"]] = PyJWK(entry)
                    except jwt.PyJWTError:
                        continue
            self._keys = keys
            self._fetched_at = time.monotonic()


# A token verified once is taken at its word for this long (never past its expiry): a client sends the
# same token with every request for minutes, and the RSA check and three decodes cost ~4% of a busy
# messages process's CPU (bench/README.md, the send path's profile). The price: a signing key withdrawn
# from the JWKS still vouches for tokens already seen, for at most this long.
VERIFIED_SECONDS = 60.0
VERIFIED_MAX = 20_000  # tokens remembered per process; the oldest go first


class TokenVerifier:
    """Trusts the built-in issuer and, when configured, further issuers (Keycloak's realm). Each token
    is checked against the keys of the issuer it names, so one issuer's keys never vouch for another."""

    def __init__(
        self,
        jwks: JwksCache,
        issuer: str,
        audience: str,
        *,
        extra_issuers: Sequence[tuple[str, JwksCache]] = (),
    ) -> None:
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience
        self.trusted: dict[str, JwksCache] = {issuer: jwks, **dict(extra_issuers)}
        self._verified: dict[str, tuple[float, dict[str, Any]]] = {}  # token -> (trusted until, claims)

    async def verify_claims(self, token: str) -> dict[str, Any]:
        """A valid access token's claims, whether or not it is linked to a Beep user yet."""
        now = time.time()
        remembered = self._verified.get(token)
        if remembered is not None:
            if now < remembered[0]:
                return dict(remembered[1])
            del self._verified[token]
        claims = await self._check(token)
        if len(self._verified) >= VERIFIED_MAX:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (min(now + VERIFIED_SECONDS, float(claims["exp"])), claims)
        return dict(claims)

    async def _check(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            named_issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        if header.get("alg") != "RS256" or not header.get("kid"):
            raise InvalidToken("unsupported token")
        jwks = self.trusted.get(str(named_issuer))
        if jwks is None:
            raise InvalidToken("untrusted issuer")
        key = await jwks.key(str(header["kid"]))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=str(named_issuer),
                options={"require": ["exp", "iat", "sub"]},
                leeway=10,
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        return claims

    async def verify(self, token: str) -> Principal:
        claims = await self.verify_claims(token)
        raw_user = claims.get("beep_user_id")
        if raw_user is None or not str(raw_user).isdigit():
            # A Keycloak identity not yet linked to a Beep user (brokered first login): only the users
            # subgraph's completeFirstSignIn accepts it, and it takes the token as an argument.
            raise InvalidToken("token has no beep_user_id")
        return Principal(
            user_id=int(raw_user),
            username=claims.get("preferred_username"),
            token_id=claims.get("jti"),
            expires_at=int(claims["exp"]),
            locale=claims.get("locale") if isinstance(claims.get("locale"), str) else None,
            issuer=str(claims["iss"]),
        )
