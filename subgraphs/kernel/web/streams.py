"""One subscriber's resumable live stream: what every subscription resolver does, written once.

A subscription field describes its stream as a `LiveStream` (which topics, how an event becomes what the
client receives, how the subscriber's access is re-checked, what is replayed) and `follow` runs it:

1. Subscribe to the bus first, then `opened()`: the access check again and the starting state (a
   snapshot), then the replay of stored events after the client's cursor. Nothing published between the
   check and the subscription is lost; whatever arrives both stored and live is dropped the second time,
   by its cursor. With `signal`, the live signal (`live_signal.LIVE`) comes right after the check, before
   the starting state: from then on every event published reaches the stream (kernel/web/live_signal.py);
   it carries `live_from()`, where a replay would start to miss nothing published from then on.
2. Live events follow. An `AccessChanged` of the stream's scope runs the guard's check, which raises the
   error that ends the stream (FORBIDDEN, NOT_FOUND); so may `render`. Before a delivery the guard
   re-checks when its period has passed (a second line behind the announcements).
3. After each delivery the operation's sessions are released (`release`): a long-lived subscription
   holds no database connection between events. An item `last` says is final ends the stream.
4. A subscriber that fell a whole queue behind (`SubscriberOverflow`) starts over from step 1 at its
   cursor when the stream can replay, instead of failing.

The router's fan-out tier (router/fanout.ts) runs these same resolvers as one of a shared stream's
subscribers (a fan-out credential, kernel/web/internal.py): nothing here knows or needs to.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from db.engines import Database
from subgraphs.kernel.errors import BeepGraphQLError, TopLevelCode
from subgraphs.kernel.events.bus import EventBus, SubscriberOverflow
from subgraphs.kernel.events.catalogue import AccessChanged, Event
from subgraphs.kernel.events.outbox import DIRECTORY_STORE, Cursor, Deduplicator, replay
from subgraphs.kernel.events.outbox import published as outbox_published
from subgraphs.kernel.web.live_signal import marker

T = TypeVar("T")
log = logging.getLogger("beep.streams")

REPLAY_BATCH = 500  # stored events read per query when a subscriber resumes


@dataclass
class Guard:
    """When a stream re-checks its subscriber's access. `check` raises the error that ends the stream.

    `channel_id`: an AccessChanged naming another channel is not this stream's concern (None: every
    AccessChanged on the stream's topics is). `every`: before a delivery, re-check if this many seconds
    passed since the last check (0: before every delivery; None: only on announcements).

    Each period is shortened by a random part of up to a quarter (`spread`): streams opened together (a
    router reopening its streams, a load's start) would otherwise re-check together, period after period,
    in one burst of reads ahead of their events; spread, they drift apart."""

    check: Callable[[], Awaitable[None]]
    channel_id: int | None = None
    every: float | None = None
    clock: Callable[[], float] = time.monotonic
    spread: Callable[[], float] = field(default=lambda: random.uniform(0.75, 1.0))
    checked_at: float = field(init=False)
    period: float | None = field(init=False)  # this period's length: `every`, spread

    def __post_init__(self) -> None:
        self._checked()  # the stream was checked as it opened

    def _checked(self) -> None:
        self.checked_at = self.clock()
        self.period = None if self.every is None else self.every * self.spread()

    async def run(self) -> None:
        await self.check()
        self._checked()

    async def access_changed(self, event: AccessChanged) -> None:
        if self.channel_id is None or event.channel_id in (None, self.channel_id):
            await self.run()

    async def before_delivery(self) -> None:
        if self.period is None:
            return
        if self.period <= 0 or self.clock() - self.checked_at > self.period:
            await self.run()


async def _nothing() -> Sequence[object]:
    return ()


def _never_last(_item: object) -> bool:
    return False


@dataclass
class LiveStream(Generic[T]):
    """A subscription's stream, declared (see the module docstring for how `follow` runs it).

    `render(event)`: what to deliver for a live or replayed event (usually zero or one item); it may raise
    the error that ends the stream. `opened()`: once subscribed, before any replay: check again (raise)
    and return a starting state to deliver first, if the stream has one. `guard`: the access re-checks
    for AccessChanged and by time (without one, AccessChanged goes to `render` like any event).
    `replay(cursor)`: stored events after `cursor`, oldest first (with `after`, the client's cursor).
    With `replay`, an event at or before the last cursor seen is dropped (replayed and live both, or
    published twice by the relay). `live_from()`: read once subscribed, the cursor from which a replay
    misses nothing published after that moment (sent with the live signal, for the router's reopens)."""

    topics: Sequence[str]
    render: Callable[[Event], Awaitable[Sequence[T]]]
    opened: Callable[[], Awaitable[Sequence[T]]] = _nothing  # type: ignore[assignment]
    guard: Guard | None = None
    replay: Callable[[Cursor], AsyncIterator[Event]] | None = None
    after: Cursor | None = None
    last: Callable[[T], bool] = _never_last
    live_from: Callable[[], Awaitable[Cursor]] | None = None


def mapped(convert: Callable[[Event], T | None]) -> Callable[[Event], Awaitable[Sequence[T]]]:
    """A `render` from a plain conversion: an event becomes one item, or none (None)."""

    async def render(event: Event) -> Sequence[T]:
        item = convert(event)
        return () if item is None else (item,)

    return render


async def follow(
    stream: LiveStream[T], bus: EventBus, release: Callable[[], Awaitable[None]], *, signal: bool = False
) -> AsyncGenerator[T, None]:
    """Runs `stream` for one subscriber until it ends (an error raised, a final item, the bus closed).
    With `signal` (the router asked: `BeepContext.live_signal`), yields the live signal once."""
    seen = Deduplicator(stream.after) if stream.replay is not None else None
    while True:
        try:
            async with bus.subscribe(*stream.topics) as live:
                starting = await stream.opened()
                if signal:
                    signal = False  # once: a start over after an overflow is not news to the client
                    live_from = await stream.live_from() if stream.live_from is not None else None
                    yield marker(None if live_from is None else str(live_from))
                for item in starting:
                    yield item
                    await release()
                    if stream.last(item):
                        return
                sources: list[AsyncIterator[Event]] = []
                if stream.replay is not None and seen is not None and seen.cursor is not None:
                    sources.append(stream.replay(seen.cursor))
                sources.append(live)
                for source in sources:
                    async for event in source:
                        if seen is not None and not seen.fresh(event):
                            continue
                        if stream.guard is not None and isinstance(event, AccessChanged):
                            await stream.guard.access_changed(event)
                            continue
                        items = await stream.render(event)
                        if items and stream.guard is not None:
                            await stream.guard.before_delivery()
                        for item in items:
                            yield item
                            await release()
                            if stream.last(item):
                                return
                return
        except SubscriberOverflow:
            # This subscriber fell more than a queue behind: catch up from storage instead of failing.
            if stream.replay is None or seen is None or seen.cursor is None:
                raise
            log.info("a live stream fell behind; replaying from its cursor", extra={"topics": stream.topics})


async def published_position(sessions: Callable[[int], AsyncSession], store: int) -> Cursor:
    """`store`'s published position (a `LiveStream.live_from`), in a short session of its own."""
    async with sessions(store) as session:
        return await outbox_published(session, store)


async def stored_after(
    sessions: Callable[[int], AsyncSession], topic: str, cursor: Cursor, *, batch: int = REPLAY_BATCH
) -> AsyncIterator[Event]:
    """A topic's stored events after `cursor`, oldest first, page by page (a short session per page, from
    `sessions(store)`: no connection is held while the subscriber consumes them)."""
    while True:
        async with sessions(cursor.store) as session:
            page = await replay(session, topic, cursor, limit=batch)
        for event in page:
            yield event
        if len(page) < batch:
            return
        cursor = Cursor.of(page[-1]) or cursor


def cursor_expired_if_moved(cursor: Cursor, store_now: int, what: str) -> None:
    """A cursor of another store than the one holding the stream's tenant now: the tenant moved, and its
    positions there mean nothing; the client reloads history and resumes from that cursor."""
    if cursor.store != store_now:
        raise BeepGraphQLError(
            f"This {what} has moved since that cursor: reload the history, then resume from its cursor.",
            TopLevelCode.CURSOR_EXPIRED,
        )


def store_sessions(database: Database) -> Callable[[int], AsyncSession]:
    """Sessions by store number, the directory's or a shard's (for `stored_after`)."""

    def session(store: int) -> AsyncSession:
        return database.directory_session() if store == DIRECTORY_STORE else database.shard_session(store)

    return session
