"""The in-process limiter's windows (the Redis one runs in the integration suite's full stack)."""

from __future__ import annotations

import pytest

from subgraphs.kernel.errors import BeepGraphQLError
from subgraphs.kernel.web import ratelimit
from subgraphs.kernel.web.ratelimit import InProcessRateLimiter, Limit


async def test_allows_up_to_the_count_then_says_when_to_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: clock[0])
    limiter = InProcessRateLimiter()
    limit = Limit("test", 3, 60)
    assert [await limiter.retry_after(limit, 7) for _ in range(3)] == [None, None, None]
    assert await limiter.retry_after(limit, 7) == pytest.approx(60)
    assert await limiter.retry_after(limit, 8) is None  # per subject
    clock[0] += 30
    assert await limiter.retry_after(limit, 7) == pytest.approx(30)
    clock[0] += 31  # a new window
    assert await limiter.retry_after(limit, 7) is None


async def test_enforce_raises_rate_limited_with_retry_after() -> None:
    limiter = InProcessRateLimiter()
    limit = Limit("tiny", 1, 3600)
    await ratelimit.enforce(limiter, limit, 1)
    with pytest.raises(BeepGraphQLError) as raised:
        await ratelimit.enforce(limiter, limit, 1)
    extensions = raised.value.extensions or {}
    assert extensions["code"] == "RATE_LIMITED" and extensions["limit"] == "tiny"
    assert 3590 <= extensions["retryAfter"] <= 3600
    assert "1 per 1 h" in raised.value.message


def test_the_stated_limits() -> None:
    assert [(limit.name, limit.count, limit.window_seconds) for limit in ratelimit.ALL_LIMITS] == [
        ("create_server", 20, 3600),
        ("create_channel", 120, 600),
        ("create_role", 120, 600),
        ("create_invite", 60, 3600),
        ("send_invitation", 60, 3600),
        ("typing", 30, 60),
        ("voice_negotiation", 120, 60),
    ]
