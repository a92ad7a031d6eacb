"""The presence store (kernel/web/presence.py) in the process and on real Redis: a connection counts until it
expires or says goodbye; a user whose last connection expired without a goodbye (their process died) is
handed to exactly one sweeper, once; a goodbye is never handed over again; a renewal that comes after
its own expiry reads as new (the user is announced back)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from subgraphs.kernel.web.presence import InProcessPresence, PresenceStore, RedisPresence, sweep_departures
from tests.harness.stack import Stack

TTL = 0.4  # seconds: short, so expiries happen within the test


def separate_database(url: str) -> str:
    """The stack's Redis, another database: the stack's own worker sweeps database 0 and would take
    these departures first."""
    return url.rsplit("/", 1)[0] + "/7"


@pytest.fixture(params=["in-process", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[tuple[PresenceStore, PresenceStore]]:
    """Two handles on one store, as two processes have (in the process: the same object twice)."""
    if request.param == "in-process":
        one = InProcessPresence()
        yield one, one
        await one.close()
        return
    full_stack: Stack = request.getfixturevalue("full_stack")
    url = separate_database(full_stack.env["BEEP_REDIS_URL"])
    first, second = RedisPresence(url), RedisPresence(url)
    yield first, second
    await first.close()
    await second.close()


def new_user() -> int:
    return secrets.randbelow(2**62) + 1


async def test_a_departure_is_handed_to_one_sweeper_once(stores: tuple[PresenceStore, PresenceStore]) -> None:
    holder, sweeper = stores
    user = new_user()
    assert await holder.touch(user, "a", TTL) == (1, True)
    assert await holder.touch(user, "b", TTL) == (2, True)
    assert await holder.touch(user, "a", TTL) == (2, False)  # a renewal
    assert user not in await sweeper.departed()  # connected: nothing to announce
    await asyncio.sleep(TTL * 1.5)  # the holder died: nobody renews (the TTL expiry is under test)
    assert await sweeper.connected([user]) == set()
    claims = await asyncio.gather(holder.departed(), sweeper.departed(), sweeper.departed())
    assert sum(user in found for found in claims) == 1
    assert user not in await sweeper.departed()  # announced once


async def test_a_goodbye_is_not_a_departure(stores: tuple[PresenceStore, PresenceStore]) -> None:
    holder, sweeper = stores
    user = new_user()
    await holder.touch(user, "a", TTL)
    await holder.touch(user, "b", TTL)
    assert await holder.drop(user, "a") == 1
    assert await holder.drop(user, "b") == 0  # the caller announces this one itself
    await asyncio.sleep(TTL * 1.5)
    assert user not in await sweeper.departed()


async def test_one_live_connection_keeps_the_user(stores: tuple[PresenceStore, PresenceStore]) -> None:
    holder, sweeper = stores
    user = new_user()
    await holder.touch(user, "dies", TTL)
    await holder.touch(user, "lives", TTL * 4)
    await asyncio.sleep(TTL * 1.5)
    assert user not in await sweeper.departed()
    assert await sweeper.connected([user]) == {user}
    await asyncio.sleep(TTL * 3)  # now the long one expires too
    assert user in await sweeper.departed()


async def test_a_late_renewal_reads_as_new(stores: tuple[PresenceStore, PresenceStore]) -> None:
    """A process that stalled past its expiry (and may have been announced offline) renews: the
    connection reads as new and the only one, so its session announces the user back."""
    holder, sweeper = stores
    user = new_user()
    await holder.touch(user, "a", TTL)
    await asyncio.sleep(TTL * 1.5)
    assert user in await sweeper.departed()
    assert await holder.touch(user, "a", TTL) == (1, True)
    assert user not in await sweeper.departed()


async def test_the_sweep_announces_each_departure_and_survives_a_failed_announcement() -> None:
    store = InProcessPresence()
    first, second = new_user(), new_user()
    for user in (first, second):
        await store.touch(user, "a", TTL)
    announced: list[int] = []

    async def announce_offline(user_id: int) -> None:
        if user_id == first:
            raise RuntimeError("the directory is down")
        announced.append(user_id)

    sweeping = asyncio.create_task(sweep_departures(store, announce_offline, every=TTL / 2))
    try:
        await asyncio.sleep(TTL * 3)
    finally:
        sweeping.cancel()
    assert announced == [second]  # the failure did not stop the others; each was announced once
    assert not sweeping.done() or sweeping.cancelled()


async def test_a_thousand_connections_coming_and_going_at_once_all_count(
    stores: tuple[PresenceStore, PresenceStore],
) -> None:
    """A herd of sockets opening, then closing, within one moment (a router restart): every touch and
    every goodbye lands. redis-py 8's default pool raised MaxConnectionsError past 100 connections here;
    kernel/redis_client.py's blocking pool makes the burst wait instead."""
    store, _other = stores
    users = [new_user() for _ in range(1000)]
    touched = await asyncio.gather(*(store.touch(u, f"c{u}", 30) for u in users))
    assert all(t.live == 1 and t.new for t in touched)
    assert await store.connected(users) == set(users)
    left = await asyncio.gather(*(store.drop(u, f"c{u}") for u in users))
    assert left == [0] * len(users)
    assert await store.connected(users) == set()


async def test_touching_many_at_once_counts_as_touching_each_in_turn(
    stores: tuple[PresenceStore, PresenceStore],
) -> None:
    """The fan-out tier renews its sockets a thousand at a time (`touch_many`, a few round trips): each
    answer is the one its own `touch` would give in that order, across the store's slices too."""
    store, other = stores
    users = [new_user() for _ in range(600)]  # more than one slice of a round trip
    twice = users[0]
    touches = [(u, "a") for u in users] + [(twice, "b"), (twice, "a")]
    found = await store.touch_many(touches, 30)
    assert found[:600] == [(1, True)] * 600
    assert found[600:] == [(2, True), (2, False)]  # a second connection, then a renewal
    assert await other.connected(users) == set(users)
    assert await store.touch_many([], 30) == []
    assert await store.touch(twice, "b", 30) == (2, False)
