"""Presence: a user is connected while one of their live subscription connections is open.

Every subgraph's WebSocket connection of a signed-in user registers here (kernel/app.py) and renews a
heartbeat every `ttl / 3` seconds; a connection whose heartbeat is older than `ttl` no longer counts, so a
process that dies takes its users offline within `ttl` (default 30 s) without anyone cleaning up. The store
is Redis in the full mode (shared by every process and replica: one sorted set per user, members are
connection ids scored by their expiry) and a dict in the embedded mode (one process).

The first connection and the last one announce `PresenceChanged` on `server:{id}` of each of the user's
servers and on `user:{id}` of each friend. Who may *see* presence is also defined here, next to the rule
that sends it: the user, people sharing a server with them, and their friends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from typing import Protocol

import sqlalchemy as sa
from redis import asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession

from db import tenants
from subgraphs.kernel import directory_tables
from subgraphs.kernel.bus import EventBus
from subgraphs.kernel.events import PresenceChanged, topic_for_server, topic_for_user

log = logging.getLogger("beep.presence")

# The status a user chose that makes them look disconnected to others (they still see themselves).
INVISIBLE_STATUS = "MYSTERIOUS"

# Light references to other contexts' tables (read-only; the kernel owns no tables).
_users = sa.table("users", sa.column("id", sa.BigInteger), sa.column("status", sa.String))
_friendships = directory_tables.friendships
_memberships = sa.table("memberships", sa.column("user_id", sa.BigInteger), sa.column("server_id"))


class PresenceStore(Protocol):
    async def touch(self, user_id: int, connection_id: str, ttl: float) -> int:
        """Register or renew a connection; the number of the user's live connections afterwards."""
        ...

    async def drop(self, user_id: int, connection_id: str) -> int:
        """Forget a connection; the number of the user's live connections afterwards."""
        ...

    async def connected(self, user_ids: Sequence[int]) -> set[int]: ...

    async def close(self) -> None: ...


class InProcessPresence:
    def __init__(self) -> None:
        self._expiry: dict[int, dict[str, float]] = {}

    def _live(self, user_id: int) -> dict[str, float]:
        now = time.monotonic()
        conns = {c: t for c, t in self._expiry.get(user_id, {}).items() if t > now}
        if conns:
            self._expiry[user_id] = conns
        else:
            self._expiry.pop(user_id, None)
        return conns

    async def touch(self, user_id: int, connection_id: str, ttl: float) -> int:
        self._expiry.setdefault(user_id, {})[connection_id] = time.monotonic() + ttl
        return len(self._live(user_id))

    async def drop(self, user_id: int, connection_id: str) -> int:
        self._expiry.get(user_id, {}).pop(connection_id, None)
        return len(self._live(user_id))

    async def connected(self, user_ids: Sequence[int]) -> set[int]:
        return {u for u in user_ids if self._live(u)}

    async def close(self) -> None:
        self._expiry.clear()


class RedisPresence:
    def __init__(self, url: str) -> None:
        self._redis = aioredis.from_url(url)

    @staticmethod
    def _key(user_id: int) -> str:
        return f"beep:presence:{user_id}"

    async def touch(self, user_id: int, connection_id: str, ttl: float) -> int:
        now = time.time()
        key = self._key(user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {connection_id: now + ttl})
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zcard(key)
            pipe.expire(key, int(ttl) + 1)  # the key vanishes with its last connection
            results = await pipe.execute()
        return int(results[2])

    async def drop(self, user_id: int, connection_id: str) -> int:
        key = self._key(user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(key, connection_id)
            pipe.zremrangebyscore(key, "-inf", time.time())
            pipe.zcard(key)
            results = await pipe.execute()
        return int(results[2])

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
        if await self.store.touch(self.user_id, self.connection_id, self.ttl) == 1:
            await self._announce(self.user_id, True)
        self._beat = asyncio.create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self.store.touch(self.user_id, self.connection_id, self.ttl)
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
