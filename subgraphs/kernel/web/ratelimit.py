"""Rate limits on creating things: fixed windows per user, shared by every process through Redis (or
kept in the process in the embedded mode, which is one process).

A user over a limit gets the top-level error RATE_LIMITED with `retryAfter` (seconds) in its
extensions, before anything is written. The limits are generous for people and tight for scripts.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Protocol

from subgraphs.kernel.errors import BeepGraphQLError, TopLevelCode
from subgraphs.kernel.metrics import RATE_LIMIT_HITS, child
from subgraphs.kernel.redis_client import redis_client


@dataclass(frozen=True)
class Limit:
    name: str
    count: int
    window_seconds: int

    def describe(self) -> str:
        if self.window_seconds < 60:
            return f"{self.count} per {self.window_seconds} s"
        minutes = self.window_seconds // 60
        return (
            f"{self.count} per {minutes} minutes" if minutes < 60 else f"{self.count} per {minutes // 60} h"
        )


CREATE_SERVER = Limit("create_server", 20, 3600)
CREATE_CHANNEL = Limit("create_channel", 120, 600)
CREATE_ROLE = Limit("create_role", 120, 600)
CREATE_INVITE = Limit("create_invite", 60, 3600)
SEND_INVITATION = Limit("send_invitation", 60, 3600)
TYPING = Limit("typing", 30, 60)  # a client repeats it every few seconds while typing
# joinVoice/updateVoice: each builds or renegotiates a peer connection on the media server (sockets,
# DTLS, ICE gathering). A client renegotiates once per change in its call; 2/s sustained is a loop.
VOICE_NEGOTIATION = Limit("voice_negotiation", 120, 60)
ALL_LIMITS = (
    CREATE_SERVER,
    CREATE_CHANNEL,
    CREATE_ROLE,
    CREATE_INVITE,
    SEND_INVITATION,
    TYPING,
    VOICE_NEGOTIATION,
)


def send_message_limit(count: int, window_seconds: int) -> Limit:
    """Messages per member and channel (settings: BEEP_MESSAGE_SEND_LIMIT per BEEP_MESSAGE_SEND_WINDOW)."""
    return Limit("send_message", count, window_seconds)


@dataclass(frozen=True)
class Window:
    """One attempt counted: how many the window has seen (this one included), and when it resets."""

    limit: Limit
    used: int
    resets_in: float  # seconds

    @property
    def allowed(self) -> bool:
        return self.used <= self.limit.count

    @property
    def remaining(self) -> int:
        return max(0, self.limit.count - self.used)


class RateLimiter(Protocol):
    async def retry_after(self, limit: Limit, subject: int | str) -> float | None:
        """Count one attempt; None if allowed, else the seconds until the window resets."""
        ...

    async def hit(self, limit: Limit, subject: int | str) -> Window:
        """Count one attempt and say where the window stands (for rate-limit headers)."""
        ...

    async def close(self) -> None: ...


class InProcessRateLimiter:
    """Fixed windows in a dict: right for the embedded mode's single process."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, int | str], tuple[float, int]] = {}
        self._lock = asyncio.Lock()

    async def retry_after(self, limit: Limit, subject: int | str) -> float | None:
        window = await self.hit(limit, subject)
        return None if window.allowed else window.resets_in

    async def hit(self, limit: Limit, subject: int | str) -> Window:
        now = time.monotonic()
        async with self._lock:
            if len(self._windows) > 100_000:  # forget lapsed windows now and then
                self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
            key = (limit.name, subject)
            ends, used = self._windows.get(key, (0.0, 0))
            if ends <= now:
                ends, used = now + limit.window_seconds, 0
            used += 1
            self._windows[key] = (ends, used)
            return Window(limit, used, ends - now)

    async def close(self) -> None:
        return None


# INCR, and on the window's first hit its expiry: one command and one reply per check (a MULTI/INCR/
# EXPIRE/EXEC pipeline sent four and parsed four, ~3.5% of the messages process on the send path).
_HIT_SCRIPT = """
local used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return used
"""


class RedisRateLimiter:
    """INCR on a key per (limit, subject, window): atomic across processes; the key expires with it."""

    def __init__(self, url: str) -> None:
        self._redis = redis_client(url)
        self._hit = self._redis.register_script(_HIT_SCRIPT)  # EVALSHA; loads it again after a restart

    async def retry_after(self, limit: Limit, subject: int | str) -> float | None:
        found = await self.hit(limit, subject)
        return None if found.allowed else found.resets_in

    async def hit(self, limit: Limit, subject: int | str) -> Window:
        window = int(time.time() // limit.window_seconds)
        key = f"beep:rl:{limit.name}:{subject}:{window}"
        used = await self._hit(keys=[key], args=[limit.window_seconds + 1])
        return Window(limit, int(used), max(0.0, (window + 1) * limit.window_seconds - time.time()))

    async def close(self) -> None:
        await self._redis.aclose()


def create_rate_limiter(redis_url: str) -> RateLimiter:
    return RedisRateLimiter(redis_url) if redis_url else InProcessRateLimiter()


async def enforce(limiter: RateLimiter, limit: Limit, subject: int | str) -> None:
    """Raise RATE_LIMITED if `subject` (a user id, or a composite such as "user:channel") is over `limit`."""
    wait = await limiter.retry_after(limit, subject)
    if wait is not None:
        child(RATE_LIMIT_HITS, limit.name).inc()
        seconds = max(1, math.ceil(wait))
        raise BeepGraphQLError(
            f"Too many attempts: at most {limit.describe()}. Try again in {seconds} s.",
            TopLevelCode.RATE_LIMITED,
            retryAfter=seconds,
            limit=limit.name,
        )
