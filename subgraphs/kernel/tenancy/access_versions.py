"""Channel permissions kept per process, and the per-server version that says whether they still hold.

Computing a member's permissions in a channel takes four statements (kernel/tenancy/access.py: the channel,
the server with membership and timeout, the roles, the overwrites): on the send path that was 11-19% of the
messages process (issue 16). Every change of who may do what in a server announces `AccessChanged`
(roles, overwrites, membership, bans, timeouts, channel moves and deletions, ownership, visibility, a
server's deletion); the unit of work gives that server a new, random `access_versions.version` in the
same transaction (kernel/tenancy/uow.py). A send then reads its channel's row, its server's fence and that
version in one statement, and reuses what this process computed under the same version.

Why it is exact, not eventually right:
- The version is read from the database on every use, so a change committed by any process (several
  messages replicas, the servers subgraph) is seen by the next read, as the uncached check would see it.
- Entries are stored under the version read *before* the permissions were computed: a change racing
  with the computation leaves an entry under the old version, which no later read matches.
- Only members' entries are kept. A join announces no `AccessChanged`, and needs none: it changes no
  other member's permissions, and a non-member has no entry to go stale.
- The channel's own placement (server, kind, folder, sync with it) is compared on every use, and a
  running timeout's end bounds its entry's life (a timeout ends without any write).
- A send on PostgreSQL reads not even the version when this process kept the member's permissions
  (`kept_for_send`): its one statement writes only while the version, the tenant's fence and the
  channel's placement and name are those the entry was kept with (`unchanged_tenant`,
  `unchanged_channel`), and when they are not it writes nothing and the send reads them again.
- Versions are random 63-bit numbers, not counters: a tenant copied to another shard (`beep tenants move`
  copies this table like any other) keeps its version and its data together, and two databases (tests)
  never share a version by accident. A server without a row (none announced since this table exists)
  reads as version 0, which no bump writes.
"""

from __future__ import annotations

import random
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import sqlalchemy as sa
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import ForeignKey
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.base import ShardBase
from subgraphs.kernel.tenancy import access, tenant_tables
from subgraphs.kernel.tenancy.access import WRITING, ChannelAccess, check_not_moved, fence


class AccessVersionRow(ShardBase):
    """A server's access version: replaced in the transaction of every change announced as
    `AccessChanged`. No row: nothing announced yet (version 0)."""

    __tablename__ = "access_versions"

    server_id: Mapped[int] = mapped_column(
        ForeignKey("shard.servers.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    version: Mapped[int]


ACCESS_VERSIONS = cast(sa.Table, AccessVersionRow.__table__)
_channels = tenant_tables.channels
_servers = tenant_tables.servers


async def bump(session: AsyncSession, server_ids: Iterable[int]) -> None:
    """Give these servers (of this shard session) a new access version, in the caller's transaction. In
    ascending order, so two transactions bumping the same servers cannot deadlock; a server deleted in
    this transaction gets no row."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for server_id in sorted(set(server_ids)):
        version = secrets.randbits(63) or 1  # never 0: that is a server without a row
        statement = insert(ACCESS_VERSIONS).from_select(
            ["server_id", "version"],
            sa.select(sa.literal(server_id, sa.BigInteger), sa.literal(version, sa.BigInteger)).where(
                sa.exists().where(_servers.c.id == server_id)
            ),
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[ACCESS_VERSIONS.c.server_id],
                set_={"version": statement.excluded.version},
            ),
            execution_options={"synchronize_session": False},
        )


# How long an entry may serve at most, even with its version unchanged: a second line of defence only.
# Each entry's life is shortened by a random part of up to a quarter: entries stored together (a load's
# first sends) would otherwise lapse together, minute after minute, and their sends all read afresh at once.
MAX_AGE_SECONDS = 60.0
MAX_ENTRIES = 20_000


@dataclass(frozen=True)
class Placement:
    """Where a channel sits: what its permissions are computed from besides the server's roles."""

    server_id: int
    kind: str
    parent_id: int | None
    permissions_synced: bool


@dataclass(frozen=True)
class _Entry:
    version: int
    placement: Placement
    access: ChannelAccess
    name: str | None  # the channel's name when the entry was stored (a rename bumps no version)
    until: float  # time.monotonic()


class ChannelAccessCache:
    """Per process: (channel, member) -> permissions computed under an access version. Bounded (least
    recently used out first)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max = max_entries
        self._entries: OrderedDict[tuple[int, int], _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[int, int], version: int, placement: Placement) -> ChannelAccess | None:
        entry = self._entries.get(key)
        if (
            entry is None
            or entry.version != version
            or entry.placement != placement
            or entry.until <= time.monotonic()
        ):
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.access

    def kept(self, key: tuple[int, int]) -> _Entry | None:
        """The entry as stored, its version and placement *not* checked against the database: for a
        write that checks them itself (`unchanged_tenant`, `unchanged_channel`). None is not counted as
        a miss: the read that follows counts it."""
        entry = self._entries.get(key)
        if entry is None or entry.until <= time.monotonic():
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(
        self,
        key: tuple[int, int],
        version: int,
        placement: Placement,
        found: ChannelAccess,
        name: str | None = None,
    ) -> None:
        until = time.monotonic() + MAX_AGE_SECONDS * random.uniform(0.75, 1.0)
        timeout_end = found.server.timed_out_until
        if timeout_end is not None:  # the permissions change when it ends: keep them no longer
            until = min(until, time.monotonic() + (timeout_end - datetime.now(UTC)).total_seconds())
        self._entries[key] = _Entry(version, placement, found, name, until)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget(self, key: tuple[int, int]) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


CACHE = ChannelAccessCache()


class _CacheCollector(Collector):
    """The cache's hit rate, read when scraped (the hot path only bumps two integers)."""

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        lookups = CounterMetricFamily(
            "beep_access_cache_lookups",
            "Channel permission lookups answered from this process's cache (hit) or computed (miss).",
            labels=["result"],
        )
        lookups.add_metric(["hit"], CACHE.hits)
        lookups.add_metric(["miss"], CACHE.misses)
        yield lookups
        size = GaugeMetricFamily("beep_access_cache_entries", "Channel permissions kept in this process.")
        size.add_metric([], len(CACHE))
        yield size


REGISTRY.register(_CacheCollector())


# Built once (a send's statement was ~1/4 construction): the channel's placement and name, its server's
# tenant-move fence and access version; FOR KEY SHARE OF servers in a write transaction.
_CHANNEL_FOR_READ = (
    sa.select(
        _channels.c.server_id,
        _channels.c.kind,
        _channels.c.parent_id,
        _channels.c.permissions_synced,
        _channels.c.name,
        _servers.c.moved_to,
        ACCESS_VERSIONS.c.version,
    )
    .select_from(
        _channels.join(_servers, _servers.c.id == _channels.c.server_id).outerjoin(
            ACCESS_VERSIONS, ACCESS_VERSIONS.c.server_id == _channels.c.server_id
        )
    )
    .where(_channels.c.id == sa.bindparam("channel_id"))
)
_CHANNEL_FOR_WRITE = fence(_CHANNEL_FOR_READ)


@dataclass(frozen=True)
class ChannelForSend:
    access: ChannelAccess | None  # None: no such channel (in this shard)
    name: str | None  # the channel's name, for the `channel { name }` a sender's client asks for
    # The access version `access` was computed under, and whether this copy of the tenant has moved (read
    # outside a write transaction, neither is checked: `unchanged_tenant` checks them when writing).
    version: int = 0
    moved: bool = False
    placement: Placement | None = None  # None: no such channel


async def channel_for_send(session: AsyncSession, channel_id: int, user_id: int) -> ChannelForSend:
    """A member's access to a channel and its name, in one statement while the server's access version
    is unchanged (the four of `access.channel_access` otherwise). In a write transaction the server row is
    read FOR KEY SHARE, as every access check's (the tenant-move fence)."""
    statement = _CHANNEL_FOR_WRITE if session.info.get(WRITING) else _CHANNEL_FOR_READ
    row = (await session.execute(statement, {"channel_id": channel_id})).first()
    if row is None:
        return ChannelForSend(None, None)
    if session.info.get(WRITING):
        check_not_moved(row.server_id, row.moved_to)
    placement = Placement(row.server_id, row.kind, row.parent_id, bool(row.permissions_synced))
    key, version = (channel_id, user_id), row.version or 0
    moved = row.moved_to is not None
    kept = CACHE.get(key, version, placement)
    if kept is not None:  # its kept name may be older: a send from it then fails once and reads again
        return ChannelForSend(kept, row.name, version, moved, placement)
    found = await access.channel_access(session, channel_id, user_id)
    if found is not None and found.server.is_member:
        CACHE.put(key, version, placement, found, row.name)
    return ChannelForSend(found, row.name, version, moved, placement)


def kept_for_send(channel_id: int, user_id: int) -> ChannelForSend | None:
    """What `channel_for_send` found last for this member and channel in this process, without reading
    anything: for a send whose one statement checks, as it writes, that the version, the channel's
    placement and name and the tenant are still those (`unchanged_tenant`, `unchanged_channel`); when
    they are not, it writes nothing, and the send reads again (`forget_for_send`). Only what permits is
    to be trusted this way: a refusal from a kept entry is checked again by reading."""
    entry = CACHE.kept((channel_id, user_id))
    if entry is None:
        return None
    return ChannelForSend(entry.access, entry.name, entry.version, False, entry.placement)


def forget_for_send(channel_id: int, user_id: int) -> None:
    CACHE.forget((channel_id, user_id))


def unchanged_tenant() -> sa.CTE:
    """One row while the server (`server_id`) is live in this copy and its access version is still
    `access_version`; none otherwise. For a write that is one statement (its own transaction) after
    access was checked outside any (the send's: messages/repository.py): it writes only from this row,
    so a change of access or a tenant move committed since the check makes it write nothing. The server
    row is read FOR KEY SHARE, the fence of every write (`access.fence`): a move's switch waits for the
    statement, or the statement waits for the switch and then sees `moved_to`."""
    return (
        sa.select(_servers.c.id)
        .select_from(_servers.outerjoin(ACCESS_VERSIONS, ACCESS_VERSIONS.c.server_id == _servers.c.id))
        .where(
            _servers.c.id == sa.bindparam("server_id", type_=sa.BigInteger),
            _servers.c.moved_to.is_(None),
            sa.func.coalesce(ACCESS_VERSIONS.c.version, 0)
            == sa.bindparam("access_version", type_=sa.BigInteger),
        )
        .with_for_update(read=True, key_share=True, of=_servers)
        .cte("unchanged_tenant")
    )


def unchanged_channel() -> sa.CTE:
    """One row while the channel (`channel_id`) still has the placement and name the send's checks used
    (`server_id`, `channel_kind`, `channel_parent_id`, `channel_synced`, `channel_name`): with
    `unchanged_tenant`, what lets a send write from permissions this process kept without reading them
    first (`kept_for_send`). Moving a channel also changes the access version; a rename changes none."""
    return (
        sa.select(_channels.c.id)
        .where(
            _channels.c.id == sa.bindparam("channel_id", type_=sa.BigInteger),
            _channels.c.server_id == sa.bindparam("server_id", type_=sa.BigInteger),
            _channels.c.kind == sa.bindparam("channel_kind", type_=sa.String),
            _channels.c.parent_id.is_not_distinct_from(
                sa.bindparam("channel_parent_id", type_=sa.BigInteger)
            ),
            _channels.c.permissions_synced == sa.bindparam("channel_synced", type_=sa.Boolean),
            _channels.c.name.is_not_distinct_from(sa.bindparam("channel_name", type_=sa.String)),
        )
        .cte("unchanged_channel")
    )
