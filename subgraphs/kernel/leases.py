"""Short exclusive leases on a name, shared by every process through Redis (or kept in the process in the
embedded mode, which is one process). They serialise a check-then-act that spans processes, such as "is
this user in a call on any media node? then join this one".

A Redis lease expires after `ttl` seconds even if its holder died, so it must outlast the work it guards;
it is released only by the holder that took it (a token compared atomically), never by a late one after
it expired and someone else took it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from subgraphs.kernel.redis_client import redis_client


class LeaseBusy(Exception):
    """The lease stayed taken for longer than the caller was willing to wait."""


class Leases(Protocol):
    def hold(self, name: str, *, ttl: float, wait: float) -> AbstractAsyncContextManager[None]:
        """Hold `name` for the block (at most `ttl` s), waiting up to `wait` s for it (else LeaseBusy)."""
        ...

    async def close(self) -> None: ...


class InProcessLeases:
    """One asyncio lock per name, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, name: str, *, ttl: float, wait: float) -> AsyncIterator[None]:
        lock, users = self._locks.get(name, (asyncio.Lock(), 0))
        self._locks[name] = (lock, users + 1)
        try:
            if wait <= 0:  # wait_for(…, 0) gives up before the acquire even runs (Python 3.11)
                if lock.locked():
                    raise LeaseBusy(name)
                await lock.acquire()
            else:
                try:
                    await asyncio.wait_for(lock.acquire(), wait)
                except TimeoutError:
                    raise LeaseBusy(name) from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[name]
            if users == 1:
                del self._locks[name]
            else:
                self._locks[name] = (lock, users - 1)

    async def close(self) -> None:
        return None


# Deletes the key only if it still holds this holder's token (it may have expired and been re-taken).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class RedisLeases:
    """SET NX PX with a random token; waiters poll (the leases guard rare, short operations)."""

    POLL_SECONDS = 0.05

    def __init__(self, url: str) -> None:
        self._redis = redis_client(url)

    @asynccontextmanager
    async def hold(self, name: str, *, ttl: float, wait: float) -> AsyncIterator[None]:
        key, token = f"beep:lease:{name}", secrets.token_hex(16)
        deadline = time.monotonic() + wait
        while not await self._redis.set(key, token, nx=True, px=max(1, int(ttl * 1000))):
            if time.monotonic() >= deadline:
                raise LeaseBusy(name)
            await asyncio.sleep(self.POLL_SECONDS)
        try:
            yield
        finally:
            await self._redis.eval(_RELEASE, 1, key, token)  # type: ignore[misc]

    async def close(self) -> None:
        await self._redis.aclose()


def create_leases(redis_url: str) -> Leases:
    return RedisLeases(redis_url) if redis_url else InProcessLeases()
