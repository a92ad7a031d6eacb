"""Slowing down password guessing: failed sign-ins are counted per account and per client address.

Limits (fixed windows of 15 minutes): 5 failures for one e-mail address, 30 for one client address. Past
either, sign-in answers RATE_LIMITED with the seconds left, whatever the password, until the window ends;
a successful sign-in clears the account's count. Counters live in Redis in the full mode (shared by every
users replica) and in memory in the embedded mode. The client address is the last entry of
X-Forwarded-For, which the router appends (see router/gateway.config.ts) and which is read only from a
caller holding the internal credential (kernel/web/internal.py), else the peer address.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Protocol

from subgraphs.kernel.errors import AuthenticationFailed, ErrorCode
from subgraphs.kernel.metrics import RATE_LIMIT_HITS, child
from subgraphs.kernel.redis_client import redis_client

WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 30


class CounterStore(Protocol):
    async def count(self, key: str) -> tuple[int, int]:
        """(failures in the current window, seconds until it ends)."""
        ...

    async def add(self, key: str) -> None: ...

    async def clear(self, key: str) -> None: ...


class MemoryCounters:
    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}

    async def count(self, key: str) -> tuple[int, int]:
        found = self._counts.get(key)
        if found is None or found[1] <= time.monotonic():
            self._counts.pop(key, None)
            return 0, 0
        return found[0], int(found[1] - time.monotonic()) + 1

    async def add(self, key: str) -> None:
        failures, _left = await self.count(key)
        ends = self._counts[key][1] if failures else time.monotonic() + WINDOW_SECONDS
        self._counts[key] = (failures + 1, ends)
        if len(self._counts) > 100_000:  # bounded: forget the oldest windows first
            for stale in sorted(self._counts, key=lambda k: self._counts[k][1])[:10_000]:
                del self._counts[stale]

    async def clear(self, key: str) -> None:
        self._counts.pop(key, None)


class RedisCounters:
    def __init__(self, url: str) -> None:
        self._redis = redis_client(url)

    async def count(self, key: str) -> tuple[int, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.ttl(key)
            raw, ttl = await pipe.execute()
        return (int(raw), max(int(ttl), 1)) if raw is not None else (0, 0)

    async def add(self, key: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS, nx=True)
            await pipe.execute()

    async def clear(self, key: str) -> None:
        await self._redis.delete(key)


def _key(kind: str, value: str) -> str:
    # Hashed: the counters never hold e-mail addresses.
    return f"beep:signin:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


@dataclass
class SignInThrottle:
    store: CounterStore

    async def check(self, email: str, address: str | None) -> None:
        keys = [(_key("account", email.strip().lower()), MAX_FAILURES_PER_ACCOUNT)]
        if address:
            keys.append((_key("address", address), MAX_FAILURES_PER_ADDRESS))
        for key, limit in keys:
            failures, left = await self.store.count(key)
            if failures >= limit:
                child(RATE_LIMIT_HITS, "sign_in").inc()
                raise AuthenticationFailed(
                    f"Too many failed sign-ins: try again in {left} seconds.",
                    code=ErrorCode.RATE_LIMITED,
                    field="email",
                )

    async def failed(self, email: str, address: str | None) -> None:
        await self.store.add(_key("account", email.strip().lower()))
        if address:
            await self.store.add(_key("address", address))

    async def succeeded(self, email: str) -> None:
        await self.store.clear(_key("account", email.strip().lower()))


def client_address(forwarded_for: str | None, peer: str | None) -> str | None:
    if forwarded_for:
        last = forwarded_for.split(",")[-1].strip()
        if last:
            return last[:64]
    return peer
