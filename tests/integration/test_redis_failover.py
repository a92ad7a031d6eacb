"""Redis failover drill: the event bus's Redis master is lost under a send load and Sentinel promotes
its replica.

Every Beep process reaches Redis through a `redis+sentinel://` URL naming three Sentinels, as it would
reach a Sentinel-managed Redis in production. Senders keep sending through the router, retrying with the
same nonce whenever an answer says UNAVAILABLE; a client follows the channel live and resumes from its
last cursor whenever its stream ends. The master is killed (SIGKILL); the Sentinels notice within a
second and promote the replica, with nobody telling Beep. Then every acknowledged message is stored
once and was delivered to the live client once (pub/sub lost what was published meanwhile; the outbox
replays it), and the only error clients saw is UNAVAILABLE. The figures are printed for docs/redis-ha.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from subgraphs.kernel.events.bus import BusInterrupted, RedisBus
from subgraphs.kernel.events.outbox import OutboxWritten
from subgraphs.kernel.redis_client import redis_client
from tests.harness.redis_sentinel import SentinelRedis
from tests.harness.services import RedisServer
from tests.harness.stack import Stack, start_full
from tests.integration.drills import Drill, Listener, check_outcome, longest_pause, set_scene

pytestmark = pytest.mark.full


async def test_a_broken_bus_connection_ends_its_subscriptions() -> None:
    """What the drill may not catch (its gap is usually empty): an event published while the bus's
    pub/sub connection is down never arrives, so the subscription must end (BusInterrupted, and a stream
    with a cursor replays) rather than wait for ever. The connection is cut with CLIENT KILL and the
    event published at once, before redis-py has reconnected and subscribed again."""
    server = RedisServer().start()
    bus, operator = RedisBus(server.url), redis_client(server.url)
    try:
        async with bus.subscribe("t") as stream:
            await operator.publish("t", "{}")  # undecodable: dropped, but proves the line is up
            await operator.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            await operator.publish("t", '{"type":"OutboxWritten","data":{"stores":[1]}}')
            events = stream.__aiter__()
            with pytest.raises(BusInterrupted):
                while True:
                    assert await asyncio.wait_for(events.__anext__(), 10) != OutboxWritten(stores=[1]), (
                        "delivered after all: the test no longer opens a gap"
                    )
        async with bus.subscribe("t") as stream:  # and subscribing again works
            await operator.publish("t", '{"type":"OutboxWritten","data":{"stores":[2]}}')
            assert await asyncio.wait_for(stream.__aiter__().__anext__(), 10) == OutboxWritten(stores=[2])
    finally:
        await bus.close()
        await operator.aclose()
        server.stop()


@pytest.fixture(scope="module")
def sentinel_managed() -> Iterator[tuple[Stack, SentinelRedis]]:
    redis = SentinelRedis()
    stack = start_full(redis=redis)
    yield stack, redis
    stack.stop()


async def test_losing_the_redis_master_loses_no_event(sentinel_managed: tuple[Stack, SentinelRedis]) -> None:
    stack, redis = sentinel_managed
    assert stack.env["BEEP_REDIS_URL"].startswith("redis+sentinel://")
    scene = await set_scene(stack, "redisfail")
    drill = Drill()
    listener = Listener(scene.owner, scene.channel_id)
    ready = asyncio.Event()
    following = asyncio.create_task(listener.follow(ready))
    await asyncio.wait_for(ready.wait(), 30)
    tasks = [
        asyncio.create_task(drill.sender(client, scene.channel_id, f"s{i}"))
        for i, client in enumerate(scene.senders)
    ]
    await asyncio.sleep(3)
    delivered_before = sum(listener.delivered.values())
    crashed_at = time.monotonic()
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1) as operator:  # its own thread, as in test_failover.py
        await loop.run_in_executor(operator, redis.crash_master)
        await loop.run_in_executor(operator, redis.wait_promoted)
    promoted_at = time.monotonic()
    await asyncio.sleep(6)
    drill.stop.set()
    await asyncio.gather(*tasks)

    await check_outcome(scene, drill, listener, following)
    pause, after_crash = longest_pause(drill, crashed_at)
    print(
        f"\nredis failover drill: {len(drill.acked)} messages acknowledged, all stored and delivered live "
        f"once; Sentinel promoted the replica {promoted_at - crashed_at:.1f} s after the SIGKILL; longest "
        f"pause between acknowledgements {pause:.1f} s; errors seen by senders: {dict(drill.errors)}; "
        f"live stream endings: {dict(listener.endings)}"
    )
    assert delivered_before > 0, "nothing was delivered live before the crash"
    assert after_crash and after_crash[-1] > promoted_at, "no message was acknowledged after the promotion"
    assert redis.master_port_now() == redis.replica_port
