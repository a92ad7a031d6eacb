"""The credentials between Beep's own processes (kernel/web/internal.py): the fan-out credential a router's
tier opens a shared stream with, and the signature on its internal requests."""

from __future__ import annotations

import pytest

from subgraphs.kernel.auth import InvalidToken
from subgraphs.kernel.web import internal

SECRET = "s3cret-of-this-deployment"


def test_a_fanout_credential_names_its_user_and_is_marked_as_fanout() -> None:
    credential = internal.fanout_credential(SECRET, 42, 2_000)
    assert internal.is_fanout(credential)
    principal = internal.fanout_principal(SECRET, credential, now=1_000)
    assert (principal.user_id, principal.fanout, principal.expires_at) == (42, True, 2_000)


@pytest.mark.parametrize(
    "credential",
    [
        internal.fanout_credential("another-secret", 42, 2_000),  # forged: not our secret
        internal.fanout_credential(SECRET, 42, 2_000).replace(" 42.", " 43."),  # another user
        internal.fanout_credential(SECRET, 42, 2_000).replace(".2000.", ".9000."),  # a later expiry
        internal.fanout_credential(SECRET, 42, 999),  # expired
        "BeepFanout 42",
        "BeepFanout x.y.z",
        "BeepFanout " + "9" * 40 + ".1.abc",
    ],
)
def test_a_credential_that_is_not_exactly_ours_is_refused(credential: str) -> None:
    with pytest.raises(InvalidToken):
        internal.fanout_principal(SECRET, credential, now=1_000)


def test_without_a_secret_nothing_verifies() -> None:
    with pytest.raises(InvalidToken):
        internal.fanout_principal("", internal.fanout_credential("", 1, 2_000), now=1_000)
    assert not internal.signature_valid("", internal.sign("", b"{}"), b"{}")


def test_a_signature_covers_the_body_and_a_minute() -> None:
    body = b'{"field":"messageEvents"}'
    header = internal.sign(SECRET, body, now=10_000)
    assert internal.signature_valid(SECRET, header, body, now=10_030)
    assert not internal.signature_valid(SECRET, header, body + b" ", now=10_030)  # another body
    assert not internal.signature_valid(SECRET, header, body, now=10_000 + 61)  # replayed later
    assert not internal.signature_valid("other", header, body, now=10_000)
    assert not internal.signature_valid(SECRET, None, body)
    assert not internal.signature_valid(SECRET, "t=abc,v1=00", body)
    assert not internal.signature_valid(SECRET, "garbage", body)


def test_the_caller_credential_is_derived_from_the_secret_and_checked_exactly() -> None:
    credential = internal.caller_credential(SECRET)
    assert credential.startswith("v1.") and SECRET not in credential
    assert internal.caller_credential_valid(SECRET, credential)
    assert internal.caller_credential_valid(SECRET, f" {credential} ")  # header whitespace
    for wrong in (
        internal.caller_credential("another-deployment"),  # forged, or the secret before a rotation
        credential[:-1] + ("0" if credential[-1] != "0" else "1"),
        credential.upper(),
        SECRET,  # the secret itself is not the credential
        internal.fanout_credential(SECRET, 1, 2_000),
        internal.sign(SECRET, b""),
        "",
        None,
        credential * 3,
    ):
        assert not internal.caller_credential_valid(SECRET, wrong), wrong
    assert not internal.caller_credential_valid("", internal.caller_credential(""))


async def _call_guarded(headers: dict[str, str], kind: str = "http") -> tuple[int, dict[str, object], bool]:
    """An app behind InternalCallerGuard, called once: (status, body, whether the app ran), and what
    `forwarded_for` read in the app."""
    import json

    from starlette.requests import HTTPConnection

    from subgraphs.kernel.web.app import InternalCallerGuard

    seen: dict[str, object] = {}

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        seen["forwarded"] = internal.forwarded_for(HTTPConnection(scope))  # type: ignore[arg-type]
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"{}"})  # type: ignore[operator]

    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": kind,
        "path": "/graphql",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("198.51.100.9", 5000),
        "extensions": {"websocket.http.response": {}} if kind == "websocket" else {},
    }
    await InternalCallerGuard(app, SECRET)(scope, receive, send)  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] in ("http.response.start", "websocket.http.response.start"))
    body = b"".join(m.get("body", b"") for m in sent if m["type"].endswith("response.body"))  # type: ignore[misc,union-attr]
    return int(start["status"]), json.loads(body) if body else {}, seen  # type: ignore[arg-type,return-value]


async def test_the_guard_refuses_callers_without_the_credential_and_trusts_forwarding_only_with_it() -> None:
    forwarded = {"x-forwarded-for": "203.0.113.7"}
    status, body, seen = await _call_guarded(forwarded)
    assert status == 403 and not seen
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"  # type: ignore[index]
    status, body, seen = await _call_guarded(forwarded | {"beep-internal": internal.caller_credential("x")})
    assert status == 403 and not seen
    status, _body, seen = await _call_guarded(
        forwarded | {"beep-internal": internal.caller_credential(SECRET)}
    )
    assert status == 200 and seen == {"forwarded": "203.0.113.7"}
    # A WebSocket upgrade is refused the same way, before it is accepted
    status, body, seen = await _call_guarded(forwarded, kind="websocket")
    assert status == 403 and not seen and "internal" in str(body)


def test_forwarding_headers_count_only_from_a_caller_that_proved_it_is_beep() -> None:
    from starlette.requests import HTTPConnection

    headers = [(b"x-forwarded-for", b"10.0.0.1, 203.0.113.7")]
    untrusted = {"type": "http", "headers": headers, "state": {}}
    assert internal.forwarded_for(HTTPConnection(untrusted)) is None
    trusted = {"type": "http", "headers": headers, "state": {internal.CALLER_STATE_KEY: True}}
    assert internal.forwarded_for(HTTPConnection(trusted)) == "10.0.0.1, 203.0.113.7"
