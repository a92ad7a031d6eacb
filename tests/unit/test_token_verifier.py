"""Access-token verification (kernel/auth.py): a token verified once is remembered for a short while, never
past its expiry, and remembering one token vouches for no other."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt import PyJWK

from subgraphs.kernel import auth
from subgraphs.kernel.auth import InvalidToken, JwksCache, TokenVerifier

ISSUER = "http://issuer.test"
AUDIENCE = "beep"


@pytest.fixture
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def verifier_for(key: rsa.RSAPrivateKey) -> tuple[TokenVerifier, list[str]]:
    jwks = JwksCache("http://unused.test/jwks")
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwks._keys = {"k1": PyJWK({**public, "kid": "k1", "use": "sig", "alg": "RS256"})}
    jwks._fetched_at = time.monotonic()
    verifier = TokenVerifier(jwks, ISSUER, AUDIENCE)
    checked: list[str] = []
    real_check = verifier._check

    async def counting_check(token: str) -> dict[str, Any]:
        checked.append(token)
        return await real_check(token)

    verifier._check = counting_check  # type: ignore[method-assign]
    return verifier, checked


def token(key: rsa.RSAPrivateKey, user_id: int, expires_in: float) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": str(user_id), "beep_user_id": str(user_id)}
    claims |= {"iat": now, "exp": int(now + expires_in)}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


async def test_a_token_is_checked_once_then_remembered(key: rsa.RSAPrivateKey) -> None:
    verifier, checked = verifier_for(key)
    issued = token(key, 7, 900)
    assert (await verifier.verify(issued)).user_id == 7
    assert (await verifier.verify(issued)).user_id == 7
    assert checked == [issued]


async def test_a_remembered_token_vouches_for_no_altered_copy(key: rsa.RSAPrivateKey) -> None:
    verifier, _checked = verifier_for(key)
    issued = token(key, 7, 900)
    await verifier.verify(issued)
    header, payload, signature = issued.split(".")
    forged_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b'"7"', b'"8"')
    ).decode()
    with pytest.raises(InvalidToken):
        await verifier.verify(f"{header}.{forged_payload}.{signature}")
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(InvalidToken):
        await verifier.verify(token(other_key, 7, 900))


async def test_a_remembered_token_is_checked_again_once_it_expires(
    key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier, checked = verifier_for(key)
    issued = token(key, 7, 5)
    await verifier.verify(issued)
    later = time.time() + 6  # past its expiry (the real check then applies its 10 s of leeway)
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: later, monotonic=time.monotonic))
    await verifier.verify(issued)
    assert checked == [issued, issued]


async def test_remembering_is_bounded(key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "VERIFIED_MAX", 3)
    verifier, checked = verifier_for(key)
    tokens = [token(key, i, 900) for i in range(4)]
    for issued in tokens:
        await verifier.verify(issued)
    await verifier.verify(tokens[0])  # the oldest was forgotten: checked again
    assert checked == [*tokens, tokens[0]]
