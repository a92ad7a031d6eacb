"""Redis clients (kernel/redis_client.py): Sentinel URLs, the waiting pool kept under Sentinel, which
Redis errors mean "retry" (UNAVAILABLE), and the bus ending subscriptions a lost connection broke."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, ResponseError

from subgraphs.kernel.events.bus import BusInterrupted, SubscriberOverflow, _FanOut, _Subscription
from subgraphs.kernel.events.catalogue import Event
from subgraphs.kernel.redis_client import (
    InvalidRedisUrl,
    SentinelTarget,
    parse_sentinel_url,
    redis_client,
    redis_unavailable,
)


def test_a_sentinel_url_names_the_sentinels_master_db_and_passwords() -> None:
    url = "redis+sentinel://:p%40ss@s1:26380,[::1]:26381,s3/beep/3?sentinel_password=sp"
    assert parse_sentinel_url(url) == SentinelTarget(
        sentinels=(("s1", 26380), ("::1", 26381), ("s3", 26379)),
        master="beep",
        db=3,
        password="p@ss",
        sentinel_password="sp",
    )


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://s1:26379/",  # no master name
        "redis+sentinel:///beep",  # no Sentinel
        "redis+sentinel://s1:port/beep",
        "redis+sentinel://s1:26379/beep/zero",
        "redis://s1:6379/0",
    ],
)
def test_a_malformed_sentinel_url_is_refused(url: str) -> None:
    with pytest.raises(InvalidRedisUrl):
        parse_sentinel_url(url)


async def test_a_sentinel_client_keeps_the_waiting_pool() -> None:
    client = redis_client("redis+sentinel://127.0.0.1:1,127.0.0.1:2/beep", max_connections=7, wait_seconds=3)
    pool = client.connection_pool
    assert isinstance(pool, aioredis.BlockingConnectionPool) and isinstance(pool, SentinelConnectionPool)
    assert (pool.max_connections, pool.timeout, pool.is_master) == (7, 3, True)
    with pytest.raises(RedisConnectionError):  # no Sentinel answers: "no master", a retryable error
        await client.ping()
    await client.aclose()


def test_lost_or_demoted_redis_is_unavailable_other_errors_are_not() -> None:
    try:
        try:
            raise ReadOnlyError("READONLY You can't write against a read only replica.")
        except ReadOnlyError as demoted:
            raise RuntimeError("while sending") from demoted
    except RuntimeError as wrapped:
        assert redis_unavailable(wrapped)
    assert redis_unavailable(RedisConnectionError("Connection refused"))
    assert not redis_unavailable(ResponseError("WRONGTYPE"))
    assert not redis_unavailable(ValueError("bug"))


async def test_an_interrupted_subscription_ends_with_bus_interrupted() -> None:
    fanout = _FanOut()
    kept, broken = _Subscription(), _Subscription()
    fanout.add("a", kept)
    fanout.add("b", broken)
    fanout.deliver("b", Event())
    assert fanout.interrupt(["b"]) == 1
    assert fanout.interrupt(["b"]) == 0  # once is enough
    events = broken.events()
    assert await anext(events) == Event()  # what arrived before the break is still delivered
    with pytest.raises(BusInterrupted):
        await anext(events)
    assert issubclass(BusInterrupted, SubscriberOverflow)  # so streams with a cursor replay from it
    assert kept.queue.empty()
