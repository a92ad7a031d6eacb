from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from subgraphs.kernel.events.bus import QUEUE_LIMIT, InProcessBus, SubscriberOverflow
from subgraphs.kernel.events.catalogue import decode, encode
from subgraphs.messages.events import MessageCreated, MessageDeleted


def created(i: int = 1) -> MessageCreated:
    return MessageCreated(i, 2, 3, 4, "hi", None, datetime(2026, 1, 1, tzinfo=UTC), "n")


def test_events_round_trip_through_json() -> None:
    event = created()
    assert decode(encode(event)) == event
    assert decode(encode(MessageDeleted(1, 2, 3))) == MessageDeleted(1, 2, 3)


def test_unknown_event_types_are_refused() -> None:
    with pytest.raises(ValueError):
        decode('{"type": "Nope", "data": {}}')


async def test_in_process_bus_delivers_to_the_topic_only() -> None:
    bus = InProcessBus()
    async with bus.subscribe("channel:1") as one, bus.subscribe("channel:2") as two:
        await bus.publish("channel:1", created(1))
        await bus.publish("channel:2", created(2))
        assert (await asyncio.wait_for(anext(one), 1)).message_id == 1
        assert (await asyncio.wait_for(anext(two), 1)).message_id == 2
    await bus.publish("channel:1", created(3))  # nobody listens: nothing is kept
    await bus.close()


async def test_a_subscriber_that_falls_behind_is_cut_off_not_buffered_forever() -> None:
    bus = InProcessBus()
    async with bus.subscribe("channel:1") as events:
        for i in range(QUEUE_LIMIT + 5):
            await bus.publish("channel:1", created(i))
        with pytest.raises(SubscriberOverflow):
            async for _ in events:
                pass
