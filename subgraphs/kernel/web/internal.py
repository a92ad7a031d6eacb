"""What Beep's own processes say to each other, signed with the deployment's internal secret.

The router's fan-out tier (router/fanout.ts) renders a shared subscription once for all its sockets. It
opens that stream as one of its authorised subscribers with a *fan-out credential* (`BeepFanout
<user>.<expiry>.<mac>`), which only a holder of the secret can make: the router refuses the scheme from
clients (its JWT plugin accepts only `Bearer`) and a subgraph accepts it only with a valid MAC. Its
internal requests (who may receive a stream, access changes, presence) carry a signature of their body
(`t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`), valid for a minute.

Every request to a subgraph's GraphQL endpoint (HTTP or WebSocket) carries the *caller credential*
(`Beep-Internal: v1.<hex HMAC-SHA256 of "beep-internal-caller.v1">`): subgraphs serve only Beep's own
processes (kernel/web/app.py, InternalCallerGuard), and trust forwarding headers only from them.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time

from starlette.requests import HTTPConnection

from subgraphs.kernel.auth import InvalidToken, Principal

FANOUT_SCHEME = "BeepFanout"
SIGNATURE_HEADER = "beep-internal-signature"
SIGNATURE_TOLERANCE_SECONDS = 60
CALLER_HEADER = "beep-internal"
CALLER_STATE_KEY = "beep_internal_caller"  # in the ASGI scope's state once the credential is checked
_CALLER_PURPOSE = "beep-internal-caller.v1"


def _mac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def fanout_credential(secret: str, user_id: int, expires_at: int) -> str:
    return f"{FANOUT_SCHEME} {user_id}.{expires_at}.{_mac(secret, f'fanout.{user_id}.{expires_at}')}"


def is_fanout(value: str) -> bool:
    return value.strip().startswith(FANOUT_SCHEME + " ")


def fanout_principal(secret: str, value: str, now: float | None = None) -> Principal:
    """The user a fan-out credential acts for; InvalidToken when it is forged, malformed or expired."""
    _scheme, _, body = value.strip().partition(" ")
    user, _, rest = body.partition(".")
    expires, _, mac = rest.partition(".")
    if not (user.isdigit() and expires.isdigit() and len(user) <= 20 and len(expires) <= 12):
        raise InvalidToken("malformed internal credential")
    if not secret or not hmac.compare_digest(mac, _mac(secret, f"fanout.{user}.{expires}")):
        raise InvalidToken("invalid internal credential")
    if int(expires) < (time.time() if now is None else now):
        raise InvalidToken("expired internal credential")
    return Principal(user_id=int(user), username=None, token_id=None, expires_at=int(expires), fanout=True)


def sign(secret: str, body: bytes, now: float | None = None) -> str:
    stamp = int(time.time() if now is None else now)
    return f"t={stamp},v1={_mac(secret, f'{stamp}.' + body.decode('utf-8', 'replace'))}"


def signature_valid(secret: str, header: str | None, body: bytes, now: float | None = None) -> bool:
    if not secret or not header:
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    stamp, mac = parts.get("t", ""), parts.get("v1", "")
    if not stamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > SIGNATURE_TOLERANCE_SECONDS:
        return False
    expected = _mac(secret, f"{stamp}." + body.decode("utf-8", "replace"))
    return hmac.compare_digest(mac, expected)


# Why a per-deployment derived key and not an expiring token: it is checked on every request, so it
# must be cheap (one constant-time comparison with a value computed once per secret), and the router's
# upstream WebSocket clients reconnect after a subgraph restart with the headers they were created with:
# an expiring credential would make every subscription that outlived it fail at the next deploy. It is
# derived, never the secret itself: whoever reads it (a log, a proxy) can call a subgraph, but cannot
# mint fan-out credentials or sign internal requests. Changing the secret revokes it.
@functools.lru_cache(maxsize=4)
def caller_credential(secret: str) -> str:
    """What a Beep process sends in `Beep-Internal` to call a subgraph's GraphQL endpoint."""
    return f"v1.{_mac(secret, _CALLER_PURPOSE)}"


def caller_credential_valid(secret: str, value: str | None) -> bool:
    if not secret or not value or len(value) > 128:
        return False
    return hmac.compare_digest(value.strip().encode(), caller_credential(secret).encode())


def forwarded_for(connection: HTTPConnection) -> str | None:
    """X-Forwarded-For, only from a caller that proved it is Beep (the router appends the client's
    address); from anyone else it is whatever they chose, so None (the peer address counts)."""
    if not connection.scope.get("state", {}).get(CALLER_STATE_KEY):
        return None
    return connection.headers.get("x-forwarded-for")
