"""The outbox relay on PostgreSQL, where a round is the relay row's lock and then one statement that
positions, advances the relay row and reads the batch (kernel/events/relay.py `_position_and_read`): on a
server of its own, a fresh database per test. Ordering, full batches, crash recovery, a leader back from
a stall, recording what was published, an idle store left unwritten, and two relays taking the lead from
each other while writers commit."""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.engines import Database
from db.migrate import upgrade
from db.shardmap import ShardMap
from subgraphs.kernel.events import outbox
from subgraphs.kernel.events.bus import InProcessBus
from subgraphs.kernel.events.catalogue import Event
from subgraphs.kernel.events.outbox import Cursor, Deduplicator
from subgraphs.kernel.events.relay import OutboxRelay, RelayConfig, _Positioned, _Round, _Row, _Statements
from subgraphs.messages.events import MessageDeleted
from tests.harness.services import PostgresServer

pytestmark = pytest.mark.full  # PostgreSQL (its own server, not the stack's): not in the unit loop

SHARD = 0
TOPIC = "channel:7"
LEASE = 1.5  # seconds: the lease of the relays that take over from a dead one
RELAY = outbox.SHARD_TABLES.relay
OUTBOX = outbox.SHARD_TABLES.outbox


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
async def database(postgres: PostgresServer) -> AsyncIterator[Database]:
    run = secrets.token_hex(3)
    directory, shards = (postgres.create_database(f"relay_{name}_{run}") for name in ("dir", "shards"))
    db = Database(directory, ShardMap.parse(f"0-1={shards}", 2))
    await upgrade(db)
    yield db
    await db.dispose()


async def write(database: Database, *message_ids: int, hold: float = 0.0) -> None:
    """One transaction writing these events; open for `hold` seconds after the insert (commits come in
    another order than the rows' ids)."""
    async with database.shard_session(SHARD) as session, session.begin():
        await outbox.write(session, SHARD, [(TOPIC, MessageDeleted(i, 7, 1)) for i in message_ids])
        await asyncio.sleep(hold)


def relay(database: Database, bus: InProcessBus, owner: str, **config: float) -> OutboxRelay:
    return OutboxRelay(database, bus, stores=[SHARD], owner=owner, config=RelayConfig(**config))  # type: ignore[arg-type]


async def drain(stream: AsyncIterator[Event], count: int) -> list[Event]:
    return [await asyncio.wait_for(anext(stream), 5) for _ in range(count)]


async def relay_row(database: Database) -> sa.Row[tuple[str, str | None, int, int]]:
    """The relay row with its `xmin`: the transaction that last wrote it (unchanged: not written)."""
    async with database.shard_session(SHARD) as session:
        columns = (RELAY.c.lease_owner, RELAY.c.published_through, RELAY.c.next_position)
        return (
            await session.execute(sa.select(sa.literal_column("xmin::text").label("xmin"), *columns))
        ).one()


async def test_a_round_positions_in_commit_order_in_two_statements_and_publishes_each_once(
    database: Database,
) -> None:
    bus = InProcessBus()
    worker = relay(database, bus, "a")
    await write(database, 1, 2)
    await write(database, 3)
    statements: list[str] = []
    async with bus.subscribe(TOPIC) as stream:
        assert not await worker.relay_store(SHARD)  # the first also registers consumers, prunes
        await write(database, 4)
        remove = database.add_query_hook(lambda statement, _url: statements.append(statement))
        try:
            assert not await worker.relay_store(SHARD)
        finally:
            remove()
        events = await drain(stream, 4)
    assert [e.message_id for e in events] == [1, 2, 3, 4]  # type: ignore[attr-defined]
    assert [Cursor.of(e) for e in events] == [Cursor(SHARD, p) for p in (1, 2, 3, 4)]
    assert len(statements) == 2, statements  # the relay row's lock, then one statement
    assert statements[0].rstrip().endswith("FOR UPDATE")
    assert statements[1].startswith("WITH todo AS")
    row = await relay_row(database)
    assert (row.next_position, row.published_through) == (5, 3)  # the second round recorded the first


async def test_a_full_batch_is_published_in_order_across_rounds(database: Database) -> None:
    bus = InProcessBus()
    await write(database, *range(1, 8))
    worker = relay(database, bus, "a", batch_size=3)
    async with bus.subscribe(TOPIC) as stream:
        assert await worker.relay_store(SHARD)  # 3 of 7: call again
        assert await worker.relay_store(SHARD)
        assert not await worker.relay_store(SHARD)
        events = await drain(stream, 7)
    assert [Cursor.of(e) for e in events] == [Cursor(SHARD, p) for p in range(1, 8)]
    assert [e.message_id for e in events] == list(range(1, 8))  # type: ignore[attr-defined]


async def test_a_relay_that_dies_after_positioning_loses_nothing(database: Database) -> None:
    bus = InProcessBus()
    await write(database, 1, 2, 3)
    crashed = relay(database, bus, "crashed", lease_seconds=LEASE)
    async with database.shard_session(SHARD) as session:
        found = await crashed._position(session, SHARD)  # then it dies before publishing
    assert (found.leading, found.positioned, [r.position for r in found.rows]) == (True, 3, [1, 2, 3])
    successor = relay(database, bus, "successor", lease_seconds=LEASE)
    async with bus.subscribe(TOPIC) as stream:
        await successor.relay_store(SHARD)  # the dead relay's lease still holds: nothing is published
        row = await relay_row(database)
        assert (row.lease_owner, row.published_through) == ("crashed", 0)
        await asyncio.sleep(LEASE + 0.1)
        await write(database, 4)
        await successor.relay_store(SHARD)  # the positioned rows again, and the new one after them
        events = await drain(stream, 4)
    assert [Cursor.of(e) for e in events] == [Cursor(SHARD, p) for p in (1, 2, 3, 4)]
    assert [e.message_id for e in events] == [1, 2, 3, 4]  # type: ignore[attr-defined]


async def test_a_leader_back_from_a_stall_publishes_what_another_positioned_meanwhile(
    database: Database,
) -> None:
    """A leader that found its store settled, then stalled past its lease while another relay took the
    lead, positioned rows and died before publishing them: its next round with new rows publishes those
    rows first (the rows positioned earlier are read along with new ones, settled or not)."""
    bus = InProcessBus()
    lease = 0.5
    stalled = relay(database, bus, "stalled", lease_seconds=lease)
    await write(database, 1)
    async with bus.subscribe(TOPIC) as stream:
        await stalled.relay_store(SHARD)
        await stalled.relay_store(SHARD)
        await stalled.relay_store(SHARD)  # everything published and recorded: settled
        await asyncio.sleep(lease + 0.1)
        await write(database, 2, 3)
        crashed = relay(database, bus, "crashed", lease_seconds=lease)
        async with database.shard_session(SHARD) as session:
            assert (await crashed._position(session, SHARD)).positioned == 2  # then it dies
        await asyncio.sleep(lease + 0.1)
        await write(database, 4)
        await stalled.relay_store(SHARD)
        events = await drain(stream, 4)
    assert [Cursor.of(e) for e in events] == [Cursor(SHARD, p) for p in (1, 2, 3, 4)]


async def test_what_a_round_published_is_recorded_by_the_next_and_an_idle_store_is_not_written(
    database: Database,
) -> None:
    bus = InProcessBus()
    worker = relay(database, bus, "a", lease_seconds=LEASE)
    await write(database, 1, 2)
    await worker.relay_store(SHARD)
    assert (await relay_row(database)).published_through == 0
    await write(database, 3)
    await worker.relay_store(SHARD)  # records 2 in the statement that positions 3, then publishes 3
    assert (await relay_row(database)).published_through == 2
    await worker.relay_store(SHARD)  # nothing new: it records 3 all the same (its only write)
    recorded = await relay_row(database)
    assert (recorded.published_through, recorded.next_position) == (3, 4)
    await worker.relay_store(SHARD)
    await worker.relay_store(SHARD)  # settled and idle, the lease fresh: the relay row is not written
    assert await relay_row(database) == recorded
    await asyncio.sleep(LEASE / 2 + 0.1)
    await worker.relay_store(SHARD)  # still idle, but the lease is due: renewed
    assert (await relay_row(database)).xmin != recorded.xmin


class StallingRelay(OutboxRelay):
    """A leader that, in every `stall_every`th round that positioned rows, stalls past its lease before
    committing (`lapsed_at` says from when the lease has lapsed). A relay starting a round after that
    waits on the relay row's lock, finds the lease lapsed, and numbers rows right after the stalled
    leader's commit: `took_over_waiting` counts those rounds (numbering from a snapshot older than that
    commit would give rows positions twice)."""

    def __init__(
        self, database: Database, bus: InProcessBus, owner: str, lease: float, stall_every: int
    ) -> None:
        super().__init__(database, bus, stores=[SHARD], owner=owner, config=RelayConfig(lease_seconds=lease))
        self._positioning_rounds = itertools.count(1)
        self._stall_every = stall_every
        self._round_began = 0.0
        self.lapsed_at: float | None = None
        self.took_over_waiting = 0

    async def _position(self, session: AsyncSession, store: int, *, unsettled: bool = True) -> _Positioned:
        self._round_began = asyncio.get_running_loop().time()
        return await super()._position(session, store, unsettled=unsettled)

    async def _position_in_one_statement(
        self, session: AsyncSession, sql: _Statements, this_round: _Round
    ) -> tuple[int, list[_Row]]:
        lease = self.config.lease_seconds
        waited = asyncio.get_running_loop().time() - self._round_began
        positioned, rows = await super()._position_in_one_statement(session, sql, this_round)
        if positioned and waited > lease / 4 and SHARD not in self.leading:
            self.took_over_waiting += 1
        if positioned and next(self._positioning_rounds) % self._stall_every == 0:
            self.lapsed_at = self._round_began + lease  # renewed or not, it lapses by then
            await asyncio.sleep(lease * 2)
            self.lapsed_at = None
        return positioned, rows


async def test_a_relay_that_waited_on_the_lock_takes_over_a_lease_that_lapsed_meanwhile(
    database: Database,
) -> None:
    """The leader stalls holding the relay row's lock until past its lease; a relay whose round waited on
    that lock judges the lease when it gets the lock, so it leads from that very round."""
    bus = InProcessBus()
    lease = 0.5
    holder = StallingRelay(database, bus, "holder", lease, stall_every=2)  # its 2nd round stalls 2 leases
    waiter = relay(database, bus, "waiter", lease_seconds=lease)
    async with bus.subscribe(TOPIC) as stream:
        await write(database, 1)
        await holder.relay_store(SHARD)  # creates the relay row (a waiter would collide on its insert)
        await write(database, 2)
        holding = asyncio.create_task(holder.relay_store(SHARD))
        await asyncio.sleep(lease / 5)  # the holder has positioned row 2 and stalls, the lock held
        await write(database, 3)
        await waiter.relay_store(SHARD)  # waits for the holder's commit, then finds its lease lapsed
        assert SHARD in waiter.leading
        await holding  # it publishes row 2 after its commit all the same (readers drop the copy)
        events = await drain(stream, 4)
    assert sorted(Cursor.of(e).position for e in events) == [1, 2, 2, 3]
    assert (await relay_row(database)).lease_owner == "waiter"


async def test_two_relays_taking_the_lead_from_each_other_position_each_row_once(
    database: Database, postgres: PostgresServer
) -> None:
    """Writers commit until the lead has changed hands three times right after a lock wait: two relays
    run rounds, each stalling past its short lease now and then, the other beginning a round once that
    lease has lapsed. Every row gets one position, positions are 1..N without a gap, and a subscriber
    dropping what it has seen (as streams do) gets every event once, in position order."""
    server_log = postgres.root / "postgres.log"
    logged_before = server_log.stat().st_size
    bus = InProcessBus()
    lease = 0.2
    relays = [StallingRelay(database, bus, owner, lease, every) for owner, every in (("a", 3), ("b", 4))]
    chance = random.Random(7)
    written: list[int] = []
    received: list[Event] = []
    writing_done = asyncio.Event()

    def took_over_waiting() -> int:
        return sum(r.took_over_waiting for r in relays)

    async def writer(first_id: int, until: float) -> None:
        ids = itertools.count(first_id)
        for size in itertools.cycle((1, 2, 3)):  # commits of one to three rows
            if took_over_waiting() >= 3 or asyncio.get_running_loop().time() > until:
                return
            rows = list(itertools.islice(ids, size))
            await write(database, *rows, hold=chance.uniform(0, 0.03))
            written.extend(rows)
            await asyncio.sleep(0.01)

    async def keep_relaying(worker: StallingRelay) -> None:
        loop = asyncio.get_running_loop()
        while not (writing_done.is_set() and len(delivered()) >= len(written)):
            await worker.relay_store(SHARD)
            await asyncio.sleep(chance.uniform(0, 0.03))
            for other in relays:
                if other is not worker and other.lapsed_at is not None:  # the next round waits on its lock
                    await asyncio.sleep(max(0.0, other.lapsed_at + 0.02 - loop.time()))

    def delivered() -> list[Event]:
        seen = Deduplicator(None)
        return [e for e in received if seen.fresh(e)]

    async def listen() -> None:
        async with bus.subscribe(TOPIC) as stream:
            async for event in stream:
                received.append(event)

    listening = asyncio.create_task(listen())
    await asyncio.sleep(0.05)
    relaying = [asyncio.create_task(keep_relaying(r)) for r in relays]
    try:
        until = asyncio.get_running_loop().time() + 20
        await asyncio.gather(*(writer(w * 100_000, until) for w in range(1, 5)))
        writing_done.set()
        await asyncio.wait(relaying, timeout=10)  # until every event is delivered (or not: see below)
    finally:
        for task in (*relaying, listening):
            task.cancel()
        ended = await asyncio.gather(*relaying, listening, return_exceptions=True)
    assert [e for e in ended if isinstance(e, Exception)] == []  # not counting cancellations

    async with database.shard_session(SHARD) as session:
        positions = (await session.scalars(sa.select(OUTBOX.c.position).order_by(OUTBOX.c.position))).all()
    assert positions == list(range(1, len(written) + 1))  # each row once, no gap, none left unnumbered
    assert (await relay_row(database)).next_position == len(written) + 1
    once = delivered()
    assert sorted(e.message_id for e in once) == sorted(written)  # type: ignore[attr-defined]
    assert [Cursor.of(e) for e in once] == [Cursor(SHARD, p) for p in positions]
    # A relay that numbered rows already numbered collides on the index (the relay takes that for
    # another's lead, rolls back, and says nothing): the server logs it.
    assert b"ix_outbox_position" not in server_log.read_bytes()[logged_before:]
    assert took_over_waiting() >= 3  # the test did what it says
