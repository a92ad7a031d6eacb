"""Failover drill: the database's primary is lost under a send load and its synchronous replica promoted.

Beep's full stack reaches PostgreSQL through multi-host URLs (`?host=A&host=B&target_session_attrs=
read-write`), as it would reach a CloudNativePG or Patroni cluster's members. Senders keep sending
through the router, retrying with the same nonce whenever an answer says UNAVAILABLE; the primary is
stopped without warning (`pg_ctl -m immediate`), the replica promoted two seconds later, as an HA
manager would. Then every acknowledged message is in the channel's history exactly once, live delivery
carries on, and the only error clients saw is the typed, retryable UNAVAILABLE. The pause is printed for
the README's figures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.harness.replication import ReplicatedPostgres
from tests.harness.stack import Stack, start_full
from tests.integration.drills import Drill, Listener, check_outcome, longest_pause, set_scene

pytestmark = pytest.mark.full


@pytest.fixture(scope="module")
def replicated() -> Iterator[tuple[Stack, ReplicatedPostgres]]:
    database = ReplicatedPostgres()
    stack = start_full(database)
    yield stack, database
    stack.stop()


async def test_losing_the_primary_loses_no_acknowledged_message(
    replicated: tuple[Stack, ReplicatedPostgres],
) -> None:
    stack, database = replicated
    scene = await set_scene(stack, "failover")
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
    crashed_at = time.monotonic()
    # Its own thread: the loop's default executor is shared with the whole session's tests, and a queue
    # there held the crash for 15 minutes once (the tokens expired before the history was read).
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1) as operator:
        await loop.run_in_executor(operator, database.crash_primary)
        await asyncio.sleep(2)
        await loop.run_in_executor(operator, database.promote_replica)
    promoted_at = time.monotonic()
    await asyncio.sleep(6)
    drill.stop.set()
    await asyncio.gather(*tasks)

    await check_outcome(scene, drill, listener, following)
    pause, after_crash = longest_pause(drill, crashed_at)
    print(
        f"\nfailover drill: {len(drill.acked)} messages acknowledged, all stored once; longest pause "
        f"between acknowledgements {pause:.1f} s (replica promoted {promoted_at - crashed_at:.1f} s after "
        f"the crash; first acknowledgement after the crash at +{after_crash[0] - crashed_at:.1f} s); "
        f"errors seen by clients: {dict(drill.errors)}; live stream endings: {dict(listener.endings)}"
    )
    assert after_crash and after_crash[-1] > promoted_at, "no message was acknowledged after the promotion"
