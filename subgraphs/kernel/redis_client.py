"""Every Redis client of a process: a pool that waits for a free connection instead of failing.

redis-py's default asyncio pool (8.x) raises MaxConnectionsError past 100 connections at once; 500
sockets closing together made presence cleanup fail 258 times that way. A blocking pool queues the
caller for up to `timeout` seconds instead, so a burst costs latency, never a lost update.
"""

from __future__ import annotations

import redis.asyncio as aioredis

MAX_CONNECTIONS = 64
WAIT_SECONDS = 20.0


def redis_client(
    url: str, *, max_connections: int = MAX_CONNECTIONS, wait_seconds: float = WAIT_SECONDS
) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=wait_seconds
    )
    return aioredis.Redis(connection_pool=pool)
