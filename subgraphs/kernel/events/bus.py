"""The event bus: publish to audience topics, subscribe to them.

`InProcessBus` serves the embedded mode (one process). `RedisBus` connects processes and replicas through
Redis pub/sub. Both share `_FanOut`: one upstream subscription per topic per process, fanned out to local
subscribers' queues, so ten thousand listeners on one channel cost one Redis subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from subgraphs.kernel import tracing
from subgraphs.kernel.events.catalogue import Event, decode, encode
from subgraphs.kernel.metrics import EVENTS_DELIVERED, SUBSCRIBER_OVERFLOWS
from subgraphs.kernel.redis_client import redis_client

log = logging.getLogger("beep.bus")
QUEUE_LIMIT = 1000  # a subscriber this far behind is cut off rather than let memory grow without bound


class SubscriberOverflow(Exception):
    """The subscriber fell too far behind; it should reconnect and resume from its cursor."""


class BusInterrupted(SubscriberOverflow):
    """The bus lost its connection (a Redis failover, a restart): events published meanwhile may never
    arrive, so the subscriber resumes from its cursor, as after an overflow."""


class EventBus(Protocol):
    async def publish(self, topic: str, event: Event) -> None: ...

    async def publish_encoded(self, items: Sequence[tuple[str, str]]) -> None:
        """Publish already encoded events in this order, in one round trip where the bus allows it (the
        outbox relay, which never decodes what it relays)."""
        ...

    def subscribe(self, *topics: str) -> contextlib.AbstractAsyncContextManager[AsyncIterator[Event]]:
        """One stream of the events of all these topics, in the order they arrive."""
        ...

    async def close(self) -> None: ...


class _Subscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_LIMIT)
        self.overflowed = False
        self.interrupted = False

    def interrupt(self) -> None:
        self.interrupted = True
        self.offer(None)

    def offer(self, event: Event | None) -> None:
        if self.overflowed:
            return  # cut off: its reader stops at the sentinel below, nothing after it is read
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            SUBSCRIBER_OVERFLOWS.inc()
            self.overflowed = True
            # Everything still queued is dropped, not only the oldest event: a stream with a cursor then
            # replays from the last event it delivered, and none queued after a dropped one has been
            # delivered (delivering those would move its cursor past the gap: lost events).
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)

    async def events(self) -> AsyncIterator[Event]:
        while True:
            event = await self.queue.get()
            if event is None:
                if self.overflowed:
                    raise SubscriberOverflow("too many undelivered events")
                if self.interrupted:
                    raise BusInterrupted("the event bus lost its connection")
                return
            tracing.delivering(event.trace_parent)
            yield event


class _FanOut:
    def __init__(self) -> None:
        self.local: dict[str, set[_Subscription]] = defaultdict(set)

    def deliver(self, topic: str, event: Event) -> None:
        subs = tuple(self.local.get(topic, ()))
        if subs and tracing.ACTIVE and event.trace_parent:
            self._deliver_traced(topic, event, subs)
        else:
            for sub in subs:
                sub.offer(event)
        if subs:
            EVENTS_DELIVERED.inc(len(subs))

    @staticmethod
    def _deliver_traced(topic: str, event: Event, subs: tuple[_Subscription, ...]) -> None:
        """This process's delivery of an event to its local subscribers, in the event's trace; they render
        it carrying the delivery's context (on to the router's fan-out)."""
        with tracing.continued("bus.deliver", event.trace_parent, **{"beep.topic": topic}) as span:
            span.set_attribute("beep.subscribers", len(subs))
            event = dataclasses.replace(event, trace_parent=tracing.current_traceparent())
            for sub in subs:
                sub.offer(event)

    def add(self, topic: str, sub: _Subscription) -> bool:
        """Registers `sub` for `topic`; True when it is the topic's first local subscriber."""
        first = not self.local[topic]
        self.local[topic].add(sub)
        return first

    def remove(self, topic: str, sub: _Subscription) -> bool:
        subs = self.local.get(topic)
        if subs is None:
            return False
        subs.discard(sub)
        if not subs:
            del self.local[topic]
            return True
        return False

    def interrupt(self, topics: Sequence[str] | None = None) -> int:
        """Ends these topics' subscriptions (all when None) with BusInterrupted; how many were ended."""
        ended = 0
        for topic in list(self.local) if topics is None else topics:
            for sub in tuple(self.local.get(topic, ())):
                if not sub.interrupted:
                    sub.interrupt()
                    ended += 1
        return ended

    def close_all(self) -> None:
        for subs in self.local.values():
            for sub in subs:
                sub.offer(None)
        self.local.clear()


class InProcessBus:
    """Delivers within this process only: the embedded mode, where every subgraph shares one process."""

    def __init__(self) -> None:
        self._fanout = _FanOut()

    async def publish(self, topic: str, event: Event) -> None:
        self._fanout.deliver(topic, event)

    async def publish_encoded(self, items: Sequence[tuple[str, str]]) -> None:
        for topic, raw in items:
            try:
                event = decode(raw)
            except ValueError:
                log.warning("dropped an undecodable event", extra={"topic": topic})
                continue
            self._fanout.deliver(topic, event)

    @contextlib.asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[AsyncIterator[Event]]:
        sub = _Subscription()
        for topic in topics:
            self._fanout.add(topic, sub)
        try:
            yield sub.events()
        finally:
            for topic in topics:
                self._fanout.remove(topic, sub)

    async def close(self) -> None:
        self._fanout.close_all()


class RedisBus:
    """Redis pub/sub shared by every process and replica. Subscribing waits for Redis to confirm, so an
    event published after `subscribe()` returns is never missed.

    When the pub/sub connection breaks (the master lost, Sentinel promoting a replica), redis-py
    reconnects (to the new master, with a Sentinel URL) and issues SUBSCRIBE again for every topic. What
    was published in between is gone from pub/sub, not from the outbox: every local subscription of a
    topic whose connection broke ends with BusInterrupted, and its owner resumes from its cursor (the
    stored events replay). redis-py may reconnect inside a read, unseen: its connect callback tells."""

    def __init__(self, url: str) -> None:
        self._redis = redis_client(url)
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=False)
        self._fanout = _FanOut()
        self._confirmations: dict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._live: set[str] = set()  # topics Redis confirmed on the current connection
        # redis-py calls it on every reconnect (a bound method: it keeps a weak reference).
        self._resubscribe = self._pubsub.on_connect
        self._pubsub.on_connect = self._on_reconnect  # type: ignore[method-assign]

    async def _on_reconnect(self, connection: Any) -> None:
        self._connection_lost("redis pub/sub reconnected")
        await self._resubscribe(connection)

    def _connection_lost(self, why: str) -> None:
        """What the topics confirmed on the lost connection carried meanwhile is gone: end their
        subscriptions (BusInterrupted) so that their owners replay from their cursors."""
        lost, self._live = self._live, set()
        ended = self._fanout.interrupt(sorted(lost))
        if ended:
            log.warning(why, extra={"subscriptions_ended": ended})

    async def publish(self, topic: str, event: Event) -> None:
        await self._redis.publish(topic, encode(event))

    async def publish_encoded(self, items: Sequence[tuple[str, str]]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for topic, raw in items:
                pipe.publish(topic, raw)
            await pipe.execute()

    @contextlib.asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[AsyncIterator[Event]]:
        sub = _Subscription()
        confirmations: list[asyncio.Future[None]] = []
        try:
            async with self._lock:
                for topic in topics:
                    if self._fanout.add(topic, sub):
                        confirmed = asyncio.get_running_loop().create_future()
                        self._confirmations[topic].append(confirmed)
                        confirmations.append(confirmed)
                        try:
                            await self._pubsub.subscribe(topic)
                        except BaseException:
                            self._confirmations[topic].remove(confirmed)  # no SUBSCRIBE went out
                            raise
                if confirmations:
                    self._ensure_reader()
            if confirmations:
                try:
                    await asyncio.wait_for(asyncio.gather(*confirmations), timeout=10)
                except TimeoutError as slow:
                    raise BusInterrupted("the event bus did not confirm a subscription") from slow
            yield sub.events()
        finally:
            for fut in confirmations:
                fut.cancel()  # answered already, or never will be (Redis went away meanwhile)
            async with self._lock:
                for topic in topics:
                    if self._fanout.remove(topic, sub):
                        with contextlib.suppress(Exception):  # a lost connection unsubscribes anyway
                            await self._pubsub.unsubscribe(topic)

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(), name="redis-bus-reader")

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("redis pub/sub read failed; reconnecting", extra={"error": repr(error)})
                self._connection_lost("redis pub/sub connection lost")
                await asyncio.sleep(0.5)
                continue
            if message is None:
                if not self._pubsub.subscribed:
                    await asyncio.sleep(0.05)
                continue
            topic = message["channel"].decode()
            kind = message["type"]
            if kind == b"subscribe" or kind == "subscribe":
                # One confirmation per SUBSCRIBE sent, in order: it answers the oldest one waiting.
                waiting = self._confirmations.get(topic)
                fut = waiting.pop(0) if waiting else None
                if waiting is not None and not waiting:
                    del self._confirmations[topic]
                if fut is not None and not fut.done():
                    fut.set_result(None)
                self._live.add(topic)
            elif kind == b"unsubscribe" or kind == "unsubscribe":
                self._live.discard(topic)
            elif kind == b"message" or kind == "message":
                try:
                    event = decode(message["data"])
                except ValueError:
                    log.warning("dropped an undecodable event", extra={"topic": topic})
                    continue
                self._fanout.deliver(topic, event)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._fanout.close_all()
        await self._pubsub.aclose()
        await self._redis.aclose()


def create_bus(redis_url: str) -> EventBus:
    return RedisBus(redis_url) if redis_url else InProcessBus()
