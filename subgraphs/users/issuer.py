"""The built-in OpenID Connect issuer (embedded default): RS256 access tokens, JWKS, discovery.

Keycloak replaces it in production behind the same verification path (JWKS + issuer + audience), so the
subgraphs and the router do not know which one signed a token.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from subgraphs.kernel.settings import Settings
from subgraphs.kernel.web.runtime import Runtime, RuntimeHolder


@dataclass(frozen=True)
class SigningKey:
    private_key: rsa.RSAPrivateKey
    kid: str

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}


def _thumbprint(private_key: rsa.RSAPrivateKey) -> str:
    # RFC 7638: SHA-256 over the canonical JSON of the required public members.
    jwk = json.loads(RSAAlgorithm.to_jwk(private_key.public_key()))
    canonical = json.dumps(
        {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    return jwt.utils.base64url_encode(hashlib.sha256(canonical.encode()).digest()).decode()


def load_or_create_key(path: Path) -> SigningKey:
    """Replicas share one key file (a Kubernetes Secret); the embedded mode creates it on first run."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} is not an RSA private key")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # Write then rename so a concurrently starting replica never reads half a key.
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        os.replace(tmp, path)
    return SigningKey(key, _thumbprint(key))


class Issuer:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.resolved_issuer_url
        self.audience = settings.jwt_audience
        self.access_ttl = settings.access_token_ttl_seconds
        self.key = load_or_create_key(settings.resolved_issuer_key_file)

    def access_token(
        self, user_id: int, username: str, locale: str | None = None, *, ttl_seconds: int | None = None
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": str(user_id),
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + (ttl_seconds or self.access_ttl),
            "jti": secrets.token_urlsafe(16),
            "beep_user_id": str(user_id),
            "preferred_username": username,
        }
        if locale:  # the user's language setting: error messages follow it (kernel/i18n.py), as with Keycloak
            claims["locale"] = locale
        return jwt.encode(claims, self.key.private_key, algorithm="RS256", headers={"kid": self.key.kid})

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.public_jwk()]}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/.well-known/jwks.json",
            "id_token_signing_alg_values_supported": ["RS256"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["token"],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "beep_user_id",
                "preferred_username",
                "locale",
            ],
        }


def issuer_for(runtime: Runtime) -> Issuer:
    """The runtime's one issuer (the key file is read once per process)."""
    return runtime.part(Issuer, lambda runtime: Issuer(runtime.settings))


def issuer_routes(holder: RuntimeHolder) -> list[BaseRoute]:
    cache = {"Cache-Control": "public, max-age=300"}

    async def jwks(_request: Request) -> JSONResponse:
        return JSONResponse(issuer_for(holder.runtime).jwks(), headers=cache)

    async def discovery(_request: Request) -> JSONResponse:
        return JSONResponse(issuer_for(holder.runtime).discovery(), headers=cache)

    return [
        Route("/.well-known/jwks.json", jwks),
        Route("/.well-known/openid-configuration", discovery),
    ]
