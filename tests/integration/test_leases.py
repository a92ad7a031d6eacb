"""Leases (kernel/leases.py) in the process and through the full stack's Redis: one holder at a time, a
waiter gets the lease when it is released, a waiter gives up with LeaseBusy, a lapsed holder does not
release its successor's lease, and nothing is left behind."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from subgraphs.kernel.leases import InProcessLeases, LeaseBusy, Leases, RedisLeases
from tests.harness.stack import Stack


@pytest.fixture(params=["in-process", "redis"])
async def leases(request: pytest.FixtureRequest) -> AsyncIterator[Leases]:
    if request.param == "in-process":
        found: Leases = InProcessLeases()
    else:
        full_stack: Stack = request.getfixturevalue("full_stack")
        found = RedisLeases(full_stack.env["BEEP_REDIS_URL"])
    yield found
    await found.close()


async def test_one_holder_at_a_time_and_waiters_follow(leases: Leases) -> None:
    name = f"t-{secrets.token_hex(4)}"
    inside: list[str] = []
    overlaps = 0

    async def work(who: str) -> None:
        nonlocal overlaps
        async with leases.hold(name, ttl=10, wait=10):
            overlaps += bool(inside)
            inside.append(who)
            await asyncio.sleep(0.1)
            inside.remove(who)

    await asyncio.gather(*(work(str(i)) for i in range(4)))
    assert overlaps == 0
    async with leases.hold(name, ttl=10, wait=0.5):  # released by all of them
        pass


async def test_a_waiter_gives_up_after_its_wait(leases: Leases) -> None:
    name = f"t-{secrets.token_hex(4)}"
    async with leases.hold(name, ttl=10, wait=1):
        with pytest.raises(LeaseBusy):
            async with leases.hold(name, ttl=10, wait=0.3):
                pass
        async with leases.hold(f"{name}-other", ttl=10, wait=0.3):  # other names are independent
            pass
    if isinstance(leases, InProcessLeases):
        assert leases._locks == {}  # nothing kept for names nobody holds


async def test_no_wait_takes_a_free_lease_and_refuses_a_held_one(leases: Leases) -> None:
    name = f"t-{secrets.token_hex(4)}"
    async with leases.hold(name, ttl=10, wait=0):
        with pytest.raises(LeaseBusy):
            async with leases.hold(name, ttl=10, wait=0):
                pass
    async with leases.hold(name, ttl=10, wait=0):  # free again
        pass


async def test_a_lapsed_holder_does_not_release_its_successor(full_stack: Stack) -> None:
    url = full_stack.env["BEEP_REDIS_URL"]
    leases, redis = RedisLeases(url), aioredis.from_url(url)
    name = f"t-{secrets.token_hex(4)}"
    try:
        async with leases.hold(name, ttl=0.2, wait=1):  # a holder that outlives its lease...
            await asyncio.sleep(0.4)
            successor = leases.hold(name, ttl=10, wait=1)
            await successor.__aenter__()  # ...whose successor takes it
        assert await redis.exists(f"beep:lease:{name}") == 1  # the lapsed holder's release left it
        await successor.__aexit__(None, None, None)
        assert await redis.exists(f"beep:lease:{name}") == 0
    finally:
        await leases.close()
        await redis.aclose()
