"""Presence: a user is connected while one of their live subscription connections is open.

Every subgraph's WebSocket connection of a signed-in user registers here (kernel/web/app.py) and renews a
heartbeat every `ttl / 3` seconds; a connection whose heartbeat is older than `ttl` no longer counts, so a
process that dies takes its users offline within `ttl` (default 30 s) without anyone cleaning up. The store
is Redis in the full mode (shared by every process and replica: one sorted set per user, members are
connection ids scored by their expiry) and a dict in the embedded mode (one process).

The first connection and the last one announce `PresenceChanged` on `server:{id}` of each of the user's
servers and on `user:{id}` of each friend. A process that dies says no goodbye: the worker's sweep
(`sweep_departures`) finds users whose last heartbeat expired and announces them offline, once across
every worker (the store hands each departure to one caller). Who may *see* presence is also defined
here, next to the rule that sends it: the user, people sharing a server with them, and their friends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, NamedTuple, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db import tenants
from subgraphs.kernel.events.bus import EventBus
from subgraphs.kernel.events.catalogue import PresenceChanged, topic_for_server, topic_for_user
from subgraphs.kernel.redis_client import redis_client
from subgraphs.kernel.tenancy import directory_tables

log = logging.getLogger("beep.presence")

# The status a user chose that makes them look disconnected to others (they still see themselves).
INVISIBLE_STATUS = "MYSTERIOUS"
TOUCHES_PER_ROUND_TRIP = 500  # a Redis transaction of 2,500 commands: a few milliseconds of Redis

# Other owners' tables, read-only: the users context's and friends' (kernel/tenancy/directory_tables.py), the
# directory's memberships (db/tenants.py).
_users = directory_tables.users
_friendships = directory_tables.friendships
_memberships = tenants.Membership.__table__


class Touched(NamedTuple):
    live: int  # the user's live connections afterwards
    new: bool  # this connection was not live before: its first beat, or a renewal after it expired


class PresenceStore(Protocol):
    async def touch(self, user_id: int, connection_id: str, ttl: float) -> Touched:
        """Register or renew a connection."""
        ...

    async def touch_many(self, touches: Sequence[tuple[int, str]], ttl: float) -> list[Touched]:
        """`touch` for each (user, connection) in order, in few round trips: the fan-out tier renews a
        thousand sockets at a time."""
        ...

    async def drop(self, user_id: int, connection_id: str) -> int:
        """Forget a connection; the number of the user's live connections afterwards."""
        ...

    async def connected(self, user_ids: Sequence[int]) -> set[int]: ...

    async def departed(self, limit: int = 500) -> list[int]:
        """Users whose last connection expired without being dropped (its process died), each handed to
        exactly one caller, whichever process asks: that caller announces them offline."""
        ...

    async def close(self) -> None: ...


class InProcessPresence:
    def __init__(self) -> None:
        self._expiry: dict[int, dict[str, float]] = {}

    def _live(self, user_id: int) -> dict[str, float]:
        """The user's unexpired connections. A user whose connections all expired keeps an empty entry
        until `departed` hands them over (a dropped last connection removes the entry at once)."""
        now = time.monotonic()
        conns = {c: t for c, t in self._expiry.get(user_id, {}).items() if t > now}
        if user_id in self._expiry:
            self._expiry[user_id] = conns
        return conns

    async def touch(self, user_id: int, connection_id: str, ttl: float) -> Touched:
        new = connection_id not in self._live(user_id)
        self._expiry.setdefault(user_id, {})[connection_id] = time.monotonic() + ttl
        return Touched(len(self._live(user_id)), new)

    async def touch_many(self, touches: Sequence[tuple[int, str]], ttl: float) -> list[Touched]:
        return [await self.touch(user_id, connection_id, ttl) for user_id, connection_id in touches]

    async def drop(self, user_id: int, connection_id: str) -> int:
        self._expiry.get(user_id, {}).pop(connection_id, None)
        live = len(self._live(user_id))
        if not live:
            self._expiry.pop(user_id, None)  # a goodbye: the caller announces it
        return live

    async def connected(self, user_ids: Sequence[int]) -> set[int]:
        return {u for u in user_ids if self._live(u)}

    async def departed(self, limit: int = 500) -> list[int]:
        gone = [u for u in list(self._expiry) if not self._live(u)][:limit]
        for user_id in gone:
            del self._expiry[user_id]
        return gone

    async def close(self) -> None:
        self._expiry.clear()


# Redis scripts: each runs atomically, so a heartbeat, a goodbye and a sweep never interleave.
# KEYS[1] the user's connections, KEYS[2] the index of users by latest expiry; ARGV[1] the connection,
# ARGV[2] now, ARGV[3] the user id. The last connection's goodbye also takes the user out of the index.
_DROP = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local live = redis.call('ZCARD', KEYS[1])
if live == 0 then redis.call('ZREM', KEYS[2], ARGV[3]) end
return live
"""
# KEYS as above; ARGV[1] now, ARGV[2] the user id. 1: the caller announces the departure; 0: the user is
# still connected (re-indexed at its latest expiry) or another sweeper took it.
_CLAIM_DEPARTURE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local latest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if latest[2] then
  redis.call('ZADD', KEYS[2], latest[2], ARGV[2])
  return 0
end
return redis.call('ZREM', KEYS[2], ARGV[2])
"""


class RedisPresence:
    """Needs Redis 6.2+ (ZADD GT)."""

    INDEX = "beep:presence:expiries"  # user id -> latest expiry of their connections

    def __init__(self, url: str) -> None:
        self._redis = redis_client(url)
        self._drop = self._redis.register_script(_DROP)
        self._claim = self._redis.register_script(_CLAIM_DEPARTURE)

    @staticmethod
    def _key(user_id: int) -> str:
        return f"beep:presence:{user_id}"

    async def touch(self, user_id: int, connection_id: str, ttl: float) -> Touched:
        return (await self.touch_many([(user_id, connection_id)], ttl))[0]

    async def touch_many(self, touches: Sequence[tuple[int, str]], ttl: float) -> list[Touched]:
        # One transaction per slice (atomic, as each touch was alone), one round trip for all its touches:
        # a thousand sockets renewed one round trip each held the event loop for about half a second.
        found: list[Touched] = []
        for start in range(0, len(touches), TOUCHES_PER_ROUND_TRIP):
            now = time.time()
            async with self._redis.pipeline(transaction=True) as pipe:
                for user_id, connection_id in touches[start : start + TOUCHES_PER_ROUND_TRIP]:
                    key = self._key(user_id)
                    pipe.zremrangebyscore(key, "-inf", now)  # first, so an expired own entry counts as new
                    pipe.zadd(key, {connection_id: now + ttl})
                    pipe.zcard(key)
                    pipe.expire(key, int(ttl) + 1)  # the key vanishes with its last connection
                    pipe.zadd(self.INDEX, {str(user_id): now + ttl}, gt=True)
                results = await pipe.execute()
            found += [Touched(int(results[i + 2]), bool(results[i + 1])) for i in range(0, len(results), 5)]
        return found

    async def drop(self, user_id: int, connection_id: str) -> int:
        keys = [self._key(user_id), self.INDEX]
        return int(await self._drop(keys=keys, args=[connection_id, time.time(), str(user_id)]))

    async def departed(self, limit: int = 500) -> list[int]:
        now = time.time()
        due = await self._redis.zrangebyscore(self.INDEX, "-inf", now, start=0, num=limit)
        gone = []
        for raw in due:
            user_id = int(cast(bytes, raw))
            if await self._claim(keys=[self._key(user_id), self.INDEX], args=[now, str(user_id)]):
                gone.append(user_id)
        return gone

    async def connected(self, user_ids: Sequence[int]) -> set[int]:
        if not user_ids:
            return set()
        now = time.time()
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.zcount(self._key(user_id), f"({now}", "+inf")
            counts = await pipe.execute()
        return {u for u, n in zip(user_ids, counts, strict=True) if int(n) > 0}

    async def close(self) -> None:
        await self._redis.aclose()


def create_presence_store(redis_url: str) -> PresenceStore:
    return RedisPresence(redis_url) if redis_url else InProcessPresence()


# --- who hears about it, who may see it --------------------------------------------------------------


async def friend_ids(session: AsyncSession, user_id: int) -> list[int]:
    rows = await session.execute(
        sa.select(_friendships.c.user_low_id, _friendships.c.user_high_id).where(
            (_friendships.c.user_low_id == user_id) | (_friendships.c.user_high_id == user_id)
        )
    )
    return [low if high == user_id else high for low, high in rows]


async def audience_topics(session: AsyncSession, user_id: int) -> list[str]:
    """`server:{id}` of each of the user's servers and `user:{id}` of each friend."""
    servers = await tenants.server_ids_of_user(session, user_id)
    friends = await friend_ids(session, user_id)
    return [*(topic_for_server(s) for s in servers), *(topic_for_user(f) for f in friends)]


async def may_see_presence(session: AsyncSession, viewer_id: int, user_ids: Iterable[int]) -> set[int]:
    """Those of `user_ids` whose presence the viewer may see: themself, co-members, friends."""
    targets = {u for u in user_ids if u != viewer_id}
    visible = {viewer_id} & set(user_ids)
    if not targets:
        return visible
    mine = sa.select(_memberships.c.server_id).where(_memberships.c.user_id == viewer_id)
    co_members = await session.scalars(
        sa.select(_memberships.c.user_id)
        .where(_memberships.c.user_id.in_(targets), _memberships.c.server_id.in_(mine))
        .distinct()
    )
    visible |= set(co_members)
    friends = set(await friend_ids(session, viewer_id))
    return visible | (targets & friends)


async def shown_online(store: PresenceStore, directory: AsyncSession, user_ids: Sequence[int]) -> set[int]:
    """Of these users, those others see as connected (connected, and not MYSTERIOUS): for counts."""
    connected = await store.connected(user_ids)
    if not connected:
        return set()
    invisible = await directory.scalars(
        sa.select(_users.c.id).where(_users.c.id.in_(connected), _users.c.status == INVISIBLE_STATUS)
    )
    return connected - set(invisible)


async def announce(session: AsyncSession, bus: EventBus, user_id: int, connected: bool) -> None:
    """Publish the user's presence to everyone who may see it (after the fact: nothing to commit)."""
    status = await session.scalar(sa.select(_users.c.status).where(_users.c.id == user_id)) or "ACTIVE"
    event = PresenceChanged(user_id, connected and status != INVISIBLE_STATUS, status)
    for topic in await audience_topics(session, user_id):
        await bus.publish(topic, event)


async def sweep_departures(
    store: PresenceStore, announce_offline: Callable[[int], Awaitable[None]], every: float
) -> None:
    """Forever: every `every` seconds, announce offline the users whose process died (`departed`). Run
    by the worker; several workers may run it, each departure is announced once."""
    while True:
        await asyncio.sleep(every)
        try:
            departed = await store.departed()
        except Exception:  # a Redis hiccup: the next sweep finds them
            log.warning("presence sweep failed", exc_info=True)
            continue
        for user_id in departed:
            try:
                await announce_offline(user_id)
            except Exception:  # claimed, so lost: readers still see the expiry
                log.warning("presence departure not announced", exc_info=True, extra={"user_id": user_id})


# --- one live connection -----------------------------------------------------------------------------


class PresenceSession:
    """One open WebSocket connection of a signed-in user: heartbeats until `end()`."""

    def __init__(self, store: PresenceStore, user_id: int, ttl: float, on_change: _Announcer) -> None:
        self.store = store
        self.user_id = user_id
        self.ttl = ttl
        self.connection_id = secrets.token_hex(8)
        self._announce = on_change
        self._beat: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if (await self.store.touch(self.user_id, self.connection_id, self.ttl)).live == 1:
            await self._announce(self.user_id, True)
        self._beat = asyncio.create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                touched = await self.store.touch(self.user_id, self.connection_id, self.ttl)
                if touched.new and touched.live == 1:
                    # This process stalled past the expiry and a sweep may have announced the user
                    # offline: they are back.
                    await self._announce(self.user_id, True)
            except Exception:  # a Redis hiccup must not end the user's subscriptions
                log.warning("presence heartbeat failed", exc_info=True)

    async def end(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        if await self.store.drop(self.user_id, self.connection_id) == 0:
            await self._announce(self.user_id, False)


class _Announcer(Protocol):
    async def __call__(self, user_id: int, connected: bool) -> None: ...


class _PresenceRuntime(Protocol):
    """What sockets_changed uses of the process's Runtime (kernel/web/runtime.py imports this module)."""

    @property
    def settings(self) -> Any: ...
    @property
    def database(self) -> Any: ...
    @property
    def bus(self) -> EventBus: ...
    @property
    def presence(self) -> PresenceStore: ...


async def sockets_changed(
    runtime: _PresenceRuntime, touch: Sequence[tuple[int, str]], drop: Sequence[tuple[int, str]]
) -> None:
    """The router's fan-out tier holds client sockets that reach no subgraph (kernel/web/live_access.py): it
    registers each signed-in one here and renews them every ttl/3, as PresenceSession does for a
    subgraph's own connection; a tier that dies stops renewing and the worker's sweep announces it."""

    async def tell(user_id: int, connected: bool) -> None:
        async with runtime.database.directory_session() as session:
            await announce(session, runtime.bus, user_id, connected)

    ttl = runtime.settings.presence_ttl_seconds
    touched = await runtime.presence.touch_many([(u, f"fanout-{c}") for u, c in touch], ttl)
    for (user_id, _connection), found in zip(touch, touched, strict=True):
        if found.new and found.live == 1:
            await tell(user_id, True)
    for user_id, connection_id in drop:
        if await runtime.presence.drop(user_id, f"fanout-{connection_id}") == 0:
            await tell(user_id, False)
