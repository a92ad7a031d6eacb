"""The access-change feed the fan-out tier follows (`GET /internal/access-changes`, in
kernel/web/live_access.py): it stays open across its heartbeats and still carries the changes announced
after them. A feed that ended at its first heartbeat made every router re-ask about every stream it holds
each 16 s (the tier treats a reconnect as "changes may have been missed")."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from subgraphs.kernel.events.bus import InProcessBus
from subgraphs.kernel.events.catalogue import ACCESS_TOPIC, AccessChanged
from subgraphs.kernel.web.live_access import access_change_lines


async def next_change(feed: AsyncIterator[bytes]) -> object:
    """The feed's next line that is not a heartbeat."""
    while (line := json.loads(await asyncio.wait_for(anext(feed), 1))) == {}:
        pass
    return line


async def test_the_feed_outlives_its_heartbeats_and_carries_later_changes() -> None:
    bus = InProcessBus()
    feed = access_change_lines(bus, heartbeat_seconds=0.02)
    assert json.loads(await anext(feed)) == {"ready": True}
    for _ in range(3):  # three quiet heartbeats
        assert json.loads(await asyncio.wait_for(anext(feed), 1)) == {}
    await bus.publish(ACCESS_TOPIC, AccessChanged(server_id=7, channel_id=None))
    assert await next_change(feed) == {"serverId": "7", "channelId": None}  # a heartbeat may come first
    await bus.publish(ACCESS_TOPIC, AccessChanged(server_id=8, channel_id=81))
    assert await next_change(feed) == {"serverId": "8", "channelId": "81"}
    await feed.aclose()


async def test_a_closed_feed_leaves_no_subscription_behind() -> None:
    bus = InProcessBus()
    feed = access_change_lines(bus, heartbeat_seconds=0.02)
    await anext(feed)
    await asyncio.wait_for(anext(feed), 1)  # waiting for an event when the tier hangs up
    await feed.aclose()
    await bus.publish(ACCESS_TOPIC, AccessChanged(server_id=7, channel_id=None))  # nobody to deliver to
    assert not bus._fanout.local.get(ACCESS_TOPIC)


async def test_the_feed_ends_when_the_bus_closes() -> None:
    bus = InProcessBus()
    feed = access_change_lines(bus, heartbeat_seconds=5)
    await anext(feed)
    waiting = asyncio.ensure_future(anext(feed))
    await asyncio.sleep(0.01)
    await bus.close()
    with pytest.raises(StopAsyncIteration):  # the feed ends, it does not go on
        await asyncio.wait_for(waiting, 1)
