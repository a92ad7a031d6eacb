"""The credentials between Beep's own processes (kernel/internal.py): the fan-out credential a router's
tier opens a shared stream with, and the signature on its internal requests."""

from __future__ import annotations

import pytest

from subgraphs.kernel import internal
from subgraphs.kernel.auth import InvalidToken

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
