"""The outbox and its relay on real SQLite files with the in-process bus: ordering, crash recovery
(positioned but never published), leases, replay, pruning and durable consumers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from db.engines import Database
from subgraphs.kernel.errors import BeepGraphQLError
from subgraphs.kernel.events import outbox
from subgraphs.kernel.events.bus import QUEUE_LIMIT, InProcessBus
from subgraphs.kernel.events.catalogue import ACCESS_TOPIC, AccessChanged, Event
from subgraphs.kernel.events.outbox import Cursor, Deduplicator
from subgraphs.kernel.events.relay import Consumer, OutboxRelay, RelayConfig
from subgraphs.messages.events import MessageDeleted
from tests.unit.sqlite_stores import database

__all__ = ["database"]  # the fixture (sqlite_stores.py)

SHARD = 0
TOPIC = "channel:7"
LEASE = 1.5  # seconds: the lease of the relays that take over from a dead one


async def write(database: Database, *message_ids: int, topic: str = TOPIC, store: int = SHARD) -> None:
    session = database.shard_session(store) if store >= 0 else database.directory_session()
    async with session, session.begin():
        await outbox.write(session, store, [(topic, MessageDeleted(i, 7, 1)) for i in message_ids])


def relay(database: Database, bus: InProcessBus, owner: str, **config: float) -> OutboxRelay:
    return OutboxRelay(database, bus, stores=[SHARD], owner=owner, config=RelayConfig(**config))  # type: ignore[arg-type]


async def drain(stream: AsyncIterator[Event], count: int) -> list[Event]:
    return [await asyncio.wait_for(anext(stream), 2) for _ in range(count)]


def test_cursors_parse_and_refuse_garbage() -> None:
    assert Cursor.parse("3:17") == Cursor(3, 17)
    assert Cursor.parse("-1:0") == Cursor(outbox.DIRECTORY_STORE, 0)
    for bad in ("", "3", "a:b", "3:-1", "-2:5", "1:2:3", "9" * 50 + ":1"):
        with pytest.raises(BeepGraphQLError):
            Cursor.parse(bad)


def test_the_deduplicator_drops_what_was_seen_and_follows_a_new_store() -> None:
    seen = Deduplicator(Cursor(1, 5))
    stamped = [
        outbox.stamped(MessageDeleted(i, 7, 1), store, pos)
        for i, (store, pos) in enumerate([(1, 4), (1, 5), (1, 6), (1, 6), (2, 1), (2, 2), (2, 2)])
    ]
    assert [seen.fresh(e) for e in stamped] == [False, False, True, False, True, True, False]
    assert seen.fresh(MessageDeleted(99, 7, 1))  # ephemeral: never a repeat


async def test_relay_positions_in_commit_order_and_publishes_each_once(database: Database) -> None:
    bus = InProcessBus()
    await write(database, 1, 2)
    await write(database, 3)
    async with bus.subscribe(TOPIC) as stream:
        assert not await relay(database, bus, "a").relay_store(SHARD)
        events = await drain(stream, 3)
    assert [e.message_id for e in events] == [1, 2, 3]  # type: ignore[attr-defined]
    assert [Cursor.of(e) for e in events] == [Cursor(SHARD, 1), Cursor(SHARD, 2), Cursor(SHARD, 3)]


async def test_a_relay_that_dies_after_positioning_loses_nothing(database: Database) -> None:
    bus = InProcessBus()
    await write(database, 1, 2, 3)
    # A lease long enough that a busy CI machine does not let it lapse before the successor's first try
    # (0.3 s did once, at the end of a full run), short enough to wait out.
    crashed = relay(database, bus, "crashed", lease_seconds=LEASE)
    async with crashed.database.shard_session(SHARD) as session:
        found = await crashed._position(session, SHARD)  # then it dies before publishing
    assert (found.leading, found.positioned, len(found.rows)) == (True, 3, 3)
    successor = relay(database, bus, "successor", lease_seconds=LEASE)
    async with bus.subscribe(TOPIC) as stream:
        await successor.relay_store(SHARD)  # the dead relay's lease still holds: nothing is published
        async with database.shard_session(SHARD) as session:
            relay_row = (await session.execute(outbox.SHARD_TABLES.relay.select())).one()
        assert (relay_row.lease_owner, relay_row.published_through) == ("crashed", 0)
        await asyncio.sleep(LEASE + 0.1)
        await successor.relay_store(SHARD)
        events = await drain(stream, 3)
    assert [Cursor.of(e) for e in events] == [Cursor(SHARD, p) for p in (1, 2, 3)]


async def test_a_leader_back_from_a_stall_publishes_what_another_positioned_without_a_new_row(
    database: Database,
) -> None:
    """A leader that found its store settled stalls past its lease; another relay takes the lead,
    positions rows and dies before publishing them. The first one's next round — no new row written since
    — publishes them: a round that takes the lease from another relay reads what is unpublished, whatever
    this relay last found."""
    bus = InProcessBus()
    stalled = relay(database, bus, "stalled", lease_seconds=LEASE)
    await write(database, 1)
    async with bus.subscribe(TOPIC) as stream:
        for _ in range(3):
            await stalled.relay_store(SHARD)  # published, recorded, then found settled
        await asyncio.sleep(LEASE + 0.1)
        await write(database, 2, 3)
        crashed = relay(database, bus, "crashed", lease_seconds=LEASE)
        async with database.shard_session(SHARD) as session:
            assert (await crashed._position(session, SHARD)).positioned == 2  # then it dies
        await asyncio.sleep(LEASE + 0.1)
        await stalled.relay_store(SHARD)
        events = await drain(stream, 3)
    assert [Cursor.of(e) for e in events] == [Cursor(SHARD, p) for p in (1, 2, 3)]


async def published_through(database: Database) -> int:
    async with database.shard_session(SHARD) as session:
        return (await session.execute(outbox.SHARD_TABLES.relay.select())).one().published_through


async def test_a_republished_batch_reaches_a_subscriber_once(database: Database) -> None:
    bus = InProcessBus()
    await write(database, 1, 2)
    first = relay(database, bus, "a")
    async with bus.subscribe(TOPIC) as stream:
        await first.relay_store(SHARD)
        # Published, recorded by the next round or when idle: a relay that dies now has not recorded it,
        # and whoever leads next (here the same owner, restarted) publishes the rows again.
        assert await published_through(database) == 0
        restarted = relay(database, bus, "a")
        await restarted.relay_store(SHARD)
        await write(database, 3)
        await restarted.relay_store(SHARD)
        seen = Deduplicator(None)
        delivered = [e for e in await drain(stream, 5) if seen.fresh(e)]
    assert [e.message_id for e in delivered] == [1, 2, 3]  # type: ignore[attr-defined]


async def test_what_a_round_published_is_recorded_by_the_next_round_or_when_idle(database: Database) -> None:
    bus = InProcessBus()
    worker = relay(database, bus, "a")
    await write(database, 1, 2)
    await worker.relay_store(SHARD)
    assert await published_through(database) == 0
    await write(database, 3)
    await worker.relay_store(SHARD)  # records 2 in the transaction that positions 3, then publishes 3
    assert await published_through(database) == 2
    await worker.record_published()
    assert await published_through(database) == 3
    await worker.relay_store(SHARD)  # nothing new: nothing to write
    assert await published_through(database) == 3


async def test_replay_returns_the_topic_after_the_cursor_and_expires_when_pruned(database: Database) -> None:
    bus = InProcessBus()
    await write(database, 1, 2)
    await write(database, 50, topic="channel:8")
    await write(database, 3)
    worker = relay(database, bus, "a", retention_seconds=3600)
    await worker.relay_store(SHARD)
    await worker.record_published()  # as when idle
    async with database.shard_session(SHARD) as session:
        head = await outbox.head(session, SHARD)
        after_first = await outbox.replay(session, TOPIC, Cursor(SHARD, 1))
    assert head == Cursor(SHARD, 4)
    assert [(e.message_id, Cursor.of(e)) for e in after_first] == [  # type: ignore[attr-defined]
        (2, Cursor(SHARD, 2)),
        (3, Cursor(SHARD, 4)),
    ]
    pruning = relay(database, bus, "a", retention_seconds=0, prune_every_seconds=0)
    await pruning.relay_store(SHARD)
    async with database.shard_session(SHARD) as session:
        assert await outbox.replay(session, TOPIC, head) == []  # up to date: nothing missed, not expired
        with pytest.raises(BeepGraphQLError) as expired:
            await outbox.replay(session, TOPIC, Cursor(SHARD, 1))
    assert expired.value.extensions == {"code": "CURSOR_EXPIRED"}


async def test_only_one_relay_leads_a_store(database: Database) -> None:
    bus = InProcessBus()
    await write(database, 1)
    leader, other = relay(database, bus, "leader"), relay(database, bus, "other")
    async with database.shard_session(SHARD) as session:
        assert (await leader._position(session, SHARD)).leading
        assert not (await other._position(session, SHARD)).leading


async def test_a_consumer_gets_every_event_once_and_retries_after_failing(database: Database) -> None:
    bus = InProcessBus()
    received: list[int] = []
    failures = [True]

    async def handle(store: int, events: list[Event]) -> None:
        if failures.pop() if failures else False:
            raise RuntimeError("index down")
        received.extend(e.message_id for e in events)  # type: ignore[attr-defined]

    consumer = Consumer("test", handle)
    worker = OutboxRelay(database, bus, stores=[SHARD], owner="w", consumers=[consumer])
    await worker.relay_store(SHARD)
    await worker.consume_store(SHARD, consumer)  # registers it at the head: nothing before is replayed
    await write(database, 1, 2)
    await worker.relay_store(SHARD)
    assert await worker.consume_store(SHARD, consumer) == 0  # fails: progress is not recorded
    assert await worker.consume_store(SHARD, consumer) == 2
    await write(database, 3)
    await worker.relay_store(SHARD)
    await worker.consume_store(SHARD, consumer)
    assert received == [1, 2, 3]


async def test_the_running_worker_feeds_consumers_in_their_own_task(database: Database) -> None:
    bus = InProcessBus()
    received: list[int] = []
    got_all = asyncio.Event()

    async def handle(_store: int, events: list[Event]) -> None:
        received.extend(e.message_id for e in events)  # type: ignore[attr-defined]
        if len(received) >= 3:
            got_all.set()

    worker = OutboxRelay(database, bus, stores=[SHARD], owner="w", consumers=[Consumer("live", handle)])
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.3)  # the consumer registers at the head
        await write(database, 1, 2, 3)
        await bus.publish(outbox.WAKE_TOPIC, outbox.OutboxWritten([SHARD]))
        await asyncio.wait_for(got_all.wait(), 5)
    finally:
        running.cancel()
    assert received == [1, 2, 3]


async def recorded_progress(database: Database, name: str) -> int | None:
    async with database.shard_session(SHARD) as session:
        consumers = outbox.SHARD_TABLES.consumers
        return await session.scalar(sa.select(consumers.c.through).where(consumers.c.name == name))


async def test_a_running_consumer_records_progress_with_its_next_read_or_when_idle(
    database: Database,
) -> None:
    """Under load a run's progress is recorded by the transaction reading the next run; idle, after
    `consumer_record_seconds`. A worker that dies before recording loses nothing: its successor handles
    that run again (at least once) and goes on."""
    bus = InProcessBus()
    handled: list[int] = []

    async def handle(_store: int, events: list[Event]) -> None:
        handled.extend(e.message_id for e in events)  # type: ignore[attr-defined]

    async def until_handled(count: int) -> None:
        async with asyncio.timeout(5):
            while len(handled) < count:
                await asyncio.sleep(0.01)

    def worker(record_seconds: float) -> OutboxRelay:
        config = RelayConfig(consumer_linger_seconds=0, consumer_record_seconds=record_seconds)
        return OutboxRelay(
            database, bus, stores=[SHARD], owner="w", config=config, consumers=[Consumer("lazy", handle)]
        )

    running = asyncio.create_task(worker(record_seconds=0.5).run())
    try:
        await asyncio.sleep(0.3)  # the consumer registers at the head
        head = await recorded_progress(database, "lazy")
        assert head is not None
        for count, message_id in enumerate((1, 2), start=1):
            await write(database, message_id)
            await bus.publish(outbox.WAKE_TOPIC, outbox.OutboxWritten([SHARD]))
            await until_handled(count)
        await asyncio.sleep(0.1)
        assert await recorded_progress(database, "lazy") == head + 1  # 1, by the read of 2; 2 not yet
        await asyncio.sleep(0.6)
        assert await recorded_progress(database, "lazy") == head + 2  # idle: recorded on its own
        await write(database, 3)
        await bus.publish(outbox.WAKE_TOPIC, outbox.OutboxWritten([SHARD]))
        await until_handled(3)
    finally:
        running.cancel()  # dies before recording 3
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert await recorded_progress(database, "lazy") == head + 2
    successor = asyncio.create_task(worker(record_seconds=0.5).run())
    try:
        await until_handled(4)  # its lease is the same owner's: it takes over at once
        await write(database, 4)
        await bus.publish(outbox.WAKE_TOPIC, outbox.OutboxWritten([SHARD]))
        await until_handled(5)
    finally:
        successor.cancel()
    assert handled == [1, 2, 3, 3, 4]  # 3 twice (never recorded), nothing lost


async def test_an_idle_consumer_answers_at_once_and_a_busy_one_takes_runs_of_events(
    database: Database,
) -> None:
    bus = InProcessBus()
    calls: list[tuple[float, list[int]]] = []
    loop = asyncio.get_running_loop()

    async def handle(_store: int, events: list[Event]) -> None:
        calls.append((loop.time(), [e.message_id for e in events]))  # type: ignore[attr-defined]

    linger = 2.0  # exaggerated, so that a loaded machine cannot blur the two behaviours
    config = RelayConfig(consumer_linger_seconds=linger)
    worker = OutboxRelay(
        database, bus, stores=[SHARD], owner="w", config=config, consumers=[Consumer("runs", handle)]
    )
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.3)  # the consumer registers at the head
        began = loop.time()
        await write(database, 1)
        await bus.publish(outbox.WAKE_TOPIC, outbox.OutboxWritten([SHARD]))
        while not calls:
            await asyncio.sleep(0.01)
        for message_id in (2, 3, 4):  # three commits, each announced, while the consumer lingers
            await write(database, message_id)
            await bus.publish(outbox.WAKE_TOPIC, outbox.OutboxWritten([SHARD]))
        while len(calls) < 2:
            await asyncio.sleep(0.05)
    finally:
        running.cancel()
    assert [ids for _at, ids in calls] == [[1], [2, 3, 4]]
    assert calls[0][0] - began < linger * 0.75  # idle: no waiting for a run


async def test_the_relay_survives_a_flood_of_commit_hints(database: Database) -> None:
    """More hints than a subscription queues (a burst of commits) must not silence the relay until its
    next sweep: it looks at every store and subscribes again."""
    bus = InProcessBus()
    worker = relay(database, bus, "w", sweep_seconds=3600)  # hints only
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.3)
        for _ in range(QUEUE_LIMIT + 10):  # published without yielding: the hint queue overflows
            await bus.publish(outbox.WAKE_TOPIC, outbox.OutboxWritten([SHARD]))
        await asyncio.sleep(0.3)
        async with bus.subscribe(TOPIC) as stream:
            await write(database, 7)
            await bus.publish(outbox.WAKE_TOPIC, outbox.OutboxWritten([SHARD]))
            (event,) = await drain(stream, 1)
    finally:
        running.cancel()
    assert event.message_id == 7  # type: ignore[attr-defined]


async def test_consumers_are_registered_before_a_new_leader_publishes(database: Database) -> None:
    """Events committed before the worker started, and relayed by its first round, reach its consumers."""
    bus = InProcessBus()
    received: list[int] = []

    async def handle(_store: int, events: list[Event]) -> None:
        received.extend(e.message_id for e in events)  # type: ignore[attr-defined]

    consumer = Consumer("late", handle)
    worker = OutboxRelay(database, bus, stores=[SHARD], owner="w", consumers=[consumer])
    await write(database, 1, 2)
    await worker.relay_store(SHARD)  # positions and publishes 1 and 2 in its first round
    await worker.consume_store(SHARD, consumer)
    assert received == [1, 2]


def test_stores_named_by_a_commit_hint_are_relayed_before_a_sweep_of_the_rest(database: Database) -> None:
    worker = OutboxRelay(database, InProcessBus(), stores=[-1, 0, 1, 2, 3], owner="w")
    worker._hinted.add(2)
    order = []
    for store in worker._hinted_first({-1, 0, 1, 2, 3}):
        order.append(store)
        if store == 0:
            worker._hinted.add(3)  # a commit on store 3 while the sweep is under way jumps the queue
    assert order == [2, -1, 0, 3, 1]


async def test_the_relay_also_announces_access_changes_to_the_fanout_tiers(database: Database) -> None:
    """One outbox row, in its tenant's shard: the relay publishes it on its topic and on `access`, which
    the routers' fan-out tiers follow (kernel/web/live_access.py); nothing else goes there."""
    bus = InProcessBus()
    session = database.shard_session(SHARD)
    async with session, session.begin():
        await outbox.write(
            session, SHARD, [("server:5", AccessChanged(5, None)), (TOPIC, MessageDeleted(1, 7, 1))]
        )
    async with bus.subscribe(ACCESS_TOPIC) as announced, bus.subscribe("server:5") as own:
        await relay(database, bus, "a").relay_store(SHARD)
        (on_access,) = await drain(announced, 1)
        (on_server,) = await drain(own, 1)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(announced), 0.2)  # the deleted message is not an access change
    assert on_access == on_server == AccessChanged(5, None)
    assert Cursor.of(on_access) == Cursor.of(on_server) is not None  # the same event, one position


def test_the_recent_rate_says_when_rounds_should_linger() -> None:
    from subgraphs.kernel.events.relay import RecentRate

    rate = RecentRate()
    assert not rate.lingers(100.0, 0.025)  # nothing yet
    for i in range(30):  # 30 events in second 100: one per 33 ms, fewer than one per 25 ms linger
        rate.add(100.0 + i / 30, 1)
    assert rate.per_second(100.99) == 30
    assert not rate.lingers(100.99, 0.025)  # each commit goes out at once
    assert rate.lingers(100.99, 0.25)  # a consumer's longer linger would take runs
    for i in range(50):  # 50 in second 101: more than one per linger
        rate.add(101.0 + i / 50, 1)
    assert rate.lingers(101.5, 0.025)
    assert rate.per_second(102.5) == 50  # the last whole second still counts
    assert rate.per_second(103.5) == 0  # and then no longer: quiet again, no waiting
    assert not rate.lingers(103.5, 0.025)
    assert not rate.lingers(101.5, 0)  # no linger configured
