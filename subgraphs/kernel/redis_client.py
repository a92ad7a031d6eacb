"""Every Redis client of a process: a pool that waits for a free connection instead of failing, reaching
either one Redis server or whichever server a set of Sentinels names as the master.

redis-py's default asyncio pool (8.x) raises MaxConnectionsError past 100 connections at once; 500
sockets closing together made presence cleanup fail 258 times that way. A blocking pool queues the
caller for up to `timeout` seconds instead, so a burst costs latency, never a lost update.

`BEEP_REDIS_URL` is either a plain `redis://host:port/db` or, for Redis in high availability,
`redis+sentinel://[:password@]sentinel1:26379,sentinel2:26379/MASTER_NAME[/db]` (the master's password
in the userinfo; `?sentinel_password=` when the Sentinels have one of their own). Sentinel-managed
connections ask the Sentinels for the master on every (re)connect, so after a failover the next
connection reaches the promoted replica with no restart (docs/redis-ha.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

MAX_CONNECTIONS = 64
WAIT_SECONDS = 20.0
SENTINEL_SCHEME = "redis+sentinel"
# A dead master's sockets are not always reset (a lost node): bound every wait on one so that a command
# fails (UNAVAILABLE) and the next connection asks the Sentinels again.
SOCKET_TIMEOUT_SECONDS = 5.0
HEALTH_CHECK_SECONDS = 5


class InvalidRedisUrl(ValueError):
    """BEEP_REDIS_URL cannot be understood; the message says what is wrong."""


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def parse_sentinel_url(url: str) -> SentinelTarget:
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise InvalidRedisUrl(f"not a {SENTINEL_SCHEME}:// URL")
    hosts = parts.netloc.rsplit("@", 1)[-1]
    sentinels: list[tuple[str, int]] = []
    for item in filter(None, hosts.split(",")):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "26379")
        if not host or not port.isdigit():
            raise InvalidRedisUrl(f"a Sentinel must be host:port, got {item!r}")
        sentinels.append((host.strip("[]"), int(port)))
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not sentinels or not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise InvalidRedisUrl(
            f"expected {SENTINEL_SCHEME}://[:password@]host:port[,host:port...]/MASTER_NAME[/db]"
        )
    query = parse_qs(parts.query)
    userinfo = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
    username, _, password = userinfo.partition(":")
    return SentinelTarget(
        sentinels=tuple(sentinels),
        master=path[0],
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_password=next(iter(query.get("sentinel_password", [])), None),
    )


class BlockingSentinelConnectionPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """Sentinel's master discovery with the blocking pool's waiting (the MRO runs both initialisers:
    Sentinel's bookkeeping, then the blocking pool's condition and timeout)."""


def redis_client(
    url: str, *, max_connections: int = MAX_CONNECTIONS, wait_seconds: float = WAIT_SECONDS
) -> aioredis.Redis:
    if url.startswith(f"{SENTINEL_SCHEME}://"):
        return _sentinel_client(parse_sentinel_url(url), max_connections, wait_seconds)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=wait_seconds
    )
    return aioredis.Redis(connection_pool=pool)


def _sentinel_client(target: SentinelTarget, max_connections: int, wait_seconds: float) -> aioredis.Redis:
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT_SECONDS,
        "socket_connect_timeout": 2.0,
    }
    if target.sentinel_password:
        sentinel_kwargs["password"] = target.sentinel_password
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)
    client: aioredis.Redis = sentinel.master_for(
        target.master,
        connection_pool_class=BlockingSentinelConnectionPool,
        max_connections=max_connections,
        timeout=wait_seconds,
        db=target.db,
        username=target.username,
        password=target.password,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=2.0,
        health_check_interval=HEALTH_CHECK_SECONDS,
    )
    return client


def redis_unavailable(error: BaseException) -> bool:
    """Redis is unreachable or mid-failover (no master yet, a demoted master refusing writes): the
    client's cue to retry (UNAVAILABLE), like a database failover (db/failures.py)."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, RedisConnectionError | RedisTimeoutError | ReadOnlyError):
            return True
        link = link.__cause__ or link.__context__
    return False
