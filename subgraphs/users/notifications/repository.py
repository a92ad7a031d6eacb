"""SQL of notifications and notification preferences (directory), plus the few reads the consumer needs
from other contexts, through light read-only references to their tables (as kernel/tenancy/access.py reads
membership): the author of the message a reply points at and the folder a channel is in (tenant shard),
the kind of a tenant (the directory's tenant table), whether a friend request or friendship still stands
and who blocked whom (friends' tables)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from db.tenants import Tenant
from subgraphs.kernel.tenancy import directory_tables, tenant_tables
from subgraphs.users.notifications import rules
from subgraphs.users.notifications.models import (
    FOLDER_SCOPE,
    GLOBAL_SCOPE,
    NotificationPreferenceRow,
    NotificationRow,
)

# The friends context's tables (kernel/tenancy/directory_tables.py) and the tenant directory (db/tenants.py).
_friend_requests = directory_tables.friend_requests
_friendships = directory_tables.friendships
_user_blocks = directory_tables.user_blocks
_tenants = Tenant.__table__

_messages = tenant_tables.messages  # the kernel's shared references to the tenant's messages and channels
_channels = tenant_tables.channels

N = NotificationRow
P = NotificationPreferenceRow
COUNT_CAP = 1000  # unread counts stop counting here (a client shows "999+")
INSERT_BATCH = 500


async def message_author(shard: AsyncSession, message_id: int, channel_id: int) -> int | None:
    """The author of a message of this channel (None when it is gone or elsewhere)."""
    return await shard.scalar(
        sa.select(_messages.c.author_id).where(
            _messages.c.id == message_id, _messages.c.channel_id == channel_id
        )
    )


async def channel_folders(shard: AsyncSession, channel_ids: Sequence[int]) -> dict[int, int]:
    """The folder each of these channels (of one shard) is in now; channels at the top level or gone are
    left out."""
    if not channel_ids:
        return {}
    rows = await shard.execute(
        sa.select(_channels.c.id, _channels.c.parent_id).where(
            _channels.c.id.in_(channel_ids), _channels.c.parent_id.is_not(None)
        )
    )
    return {r.id: r.parent_id for r in rows}


async def existing_messages(shard: AsyncSession, message_ids: list[int]) -> set[int]:
    if not message_ids:
        return set()
    return set(await shard.scalars(sa.select(_messages.c.id).where(_messages.c.id.in_(message_ids))))


# --- preferences -------------------------------------------------------------------------------------


@dataclass
class Preferences:
    """A user's rows for the scopes of one message: global, its server, its channel's folder, its channel."""

    server_level: rules.NotificationSetting | None = None
    channel_level: rules.NotificationSetting | None = None
    folder_level: rules.NotificationSetting | None = None
    snoozes: list[datetime | None] = field(default_factory=list)

    def setting(self, *, direct: bool = False) -> rules.NotificationSetting:
        return rules.effective_setting(
            self.server_level, self.channel_level, folder=self.folder_level, direct=direct
        )


def _level(raw: str | None) -> rules.NotificationSetting | None:
    return rules.NotificationSetting(raw) if raw is not None else None


@dataclass(frozen=True)
class Followers:
    server_kind: str | None  # None: no such tenant
    user_ids: list[int]  # ALL_MESSAGES on the channel or its server
    folders_followed: bool  # someone set ALL_MESSAGES on a folder of this server (which one: see the shard)


def _following(server_id: int, scope_ids: Sequence[int]) -> sa.ColumnElement[bool]:
    """ALL_MESSAGES rows on these scopes of one server: a range of the (server_id, level) index."""
    return sa.and_(
        P.server_id == server_id,
        P.level == rules.NotificationSetting.ALL_MESSAGES.value,
        P.scope_id.in_(scope_ids),
    )


async def followers(directory: AsyncSession, server_id: int, channel_id: int, limit: int) -> Followers:
    """The server's kind, the users who set ALL_MESSAGES on this channel or its server (whether a channel
    or folder override lowers it is for `preferences` to say), and whether any folder of the server is
    followed so (then the channel's folder is read from the shard and `folder_followers` asked): one
    indexed query."""
    statement = _followers_statement(limit)
    rows = (await directory.execute(statement, {"server_id": server_id, "channel_id": channel_id})).all()
    server_kind = next((r.kind for r in rows if r.kind is not None), None)
    return Followers(
        server_kind,
        sorted(r.user_id for r in rows if r.user_id is not None),
        any(bool(r.folders) for r in rows if r.kind is not None),
    )


@lru_cache(maxsize=4)
def _followers_statement(limit: int) -> sa.CompoundSelect:
    """`followers`' statement, built once: building it per message (its comparisons coerced, its cache
    key computed) was half of what the query cost the worker (py-spy, mixed load, one query per message
    spread over many channels)."""
    server_id = sa.bindparam("server_id", type_=sa.BigInteger)
    channel_id = sa.bindparam("channel_id", type_=sa.BigInteger)
    follower = (
        sa.select(P.user_id)
        .where(
            P.server_id == server_id,
            P.level == rules.NotificationSetting.ALL_MESSAGES.value,
            P.scope_id.in_([server_id, channel_id]),
        )
        .distinct()
        .order_by(P.user_id)
        .limit(limit)
        .subquery()
    )
    folders = sa.exists().where(
        P.server_id == server_id,
        P.level == rules.NotificationSetting.ALL_MESSAGES.value,
        P.scope == FOLDER_SCOPE,
    )
    kind = sa.select(
        _tenants.c.kind,
        sa.cast(sa.null(), sa.BigInteger).label("user_id"),
        folders.label("folders"),
    ).where(_tenants.c.id == server_id)
    users = sa.select(
        sa.cast(sa.null(), sa.String).label("kind"), follower.c.user_id, sa.false().label("folders")
    )
    return sa.union_all(kind, users)


async def folder_followers(directory: AsyncSession, server_id: int, folder_id: int, limit: int) -> list[int]:
    """The users who set ALL_MESSAGES on this folder (the same index as `followers`)."""
    rows = await directory.scalars(
        sa.select(P.user_id).where(_following(server_id, [folder_id])).order_by(P.user_id).limit(limit)
    )
    return list(rows)


async def server_kinds(directory: AsyncSession, server_ids: Sequence[int]) -> dict[int, str]:
    if not server_ids:
        return {}
    rows = await directory.execute(
        sa.select(_tenants.c.id, _tenants.c.kind).where(_tenants.c.id.in_(server_ids))
    )
    return {r.id: r.kind for r in rows}


async def global_snoozes(directory: AsyncSession, user_id: int) -> list[datetime | None]:
    """The user's snooze of everything (the only one that holds back what belongs to no server)."""
    until = await directory.scalar(
        sa.select(P.snoozed_until).where(P.user_id == user_id, P.scope_id == GLOBAL_SCOPE)
    )
    return [until]


# --- what the friends context says (read-only) ----------------------------------------------------------


async def friend_request_pending(directory: AsyncSession, request_id: int) -> bool:
    found = await directory.scalar(
        sa.select(_friend_requests.c.id).where(_friend_requests.c.id == request_id)
    )
    return found is not None


async def friends(directory: AsyncSession, a: int, b: int) -> bool:
    low, high = (a, b) if a < b else (b, a)
    found = await directory.scalar(
        sa.select(_friendships.c.user_low_id).where(
            _friendships.c.user_low_id == low, _friendships.c.user_high_id == high
        )
    )
    return found is not None


async def blockers_of(directory: AsyncSession, author_id: int, user_ids: Sequence[int]) -> set[int]:
    """Those of `user_ids` who blocked `author_id` (primary-key lookups)."""
    if not user_ids:
        return set()
    rows = await directory.scalars(
        sa.select(_user_blocks.c.blocker_id).where(
            _user_blocks.c.blocked_id == author_id, _user_blocks.c.blocker_id.in_(user_ids)
        )
    )
    return set(rows)


async def preferences(
    directory: AsyncSession,
    user_ids: Sequence[int],
    server_id: int,
    channel_id: int,
    folder_id: int | None = None,
) -> dict[int, Preferences]:
    """These users' rows for a message of `channel_id`, in `folder_id` (None: at the top level): primary
    key lookups."""
    found: dict[int, Preferences] = {}
    if not user_ids:
        return found
    scopes = [GLOBAL_SCOPE, server_id, channel_id, *([folder_id] if folder_id is not None else [])]
    rows = await directory.execute(
        sa.select(P.user_id, P.scope_id, P.level, P.snoozed_until).where(
            P.user_id.in_(user_ids), P.scope_id.in_(scopes)
        )
    )
    for row in rows:
        prefs = found.setdefault(row.user_id, Preferences())
        prefs.snoozes.append(row.snoozed_until)
        if row.scope_id == server_id:
            prefs.server_level = _level(row.level)
        elif row.scope_id == channel_id:
            prefs.channel_level = _level(row.level)
        elif row.scope_id == folder_id:
            prefs.folder_level = _level(row.level)
    return found


async def preference_rows(
    directory: AsyncSession, user_id: int, limit: int
) -> list[NotificationPreferenceRow]:
    rows = await directory.scalars(
        sa.select(P).where(P.user_id == user_id).order_by(P.server_id, P.scope_id).limit(limit)
    )
    return list(rows)


class _Keep(enum.Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP


async def save_preference(
    directory: AsyncSession,
    user_id: int,
    scope: str,
    scope_id: int,
    server_id: int | None,
    *,
    level: str | _Keep | None = KEEP,
    snoozed_until: datetime | _Keep | None = KEEP,
) -> None:
    """Change the level and/or the snooze of one scope (KEEP leaves it as it is); a row left with
    neither is deleted."""
    row = await directory.get(P, (user_id, scope_id))
    if row is None:
        row = P(user_id=user_id, scope_id=scope_id, scope=scope, server_id=server_id, level=None)
        directory.add(row)
    if not isinstance(level, _Keep):
        row.level = level
    if not isinstance(snoozed_until, _Keep):
        row.snoozed_until = snoozed_until
    await directory.flush()
    if row.level is None and row.snoozed_until is None:
        await directory.delete(row)
        await directory.flush()


# --- notifications -----------------------------------------------------------------------------------


async def recipients_already_notified(directory: AsyncSession, source_id: int) -> set[int]:
    return set(await directory.scalars(sa.select(N.user_id).where(N.source_id == source_id)))


async def insert(directory: AsyncSession, rows: list[dict[str, object]]) -> None:
    for start in range(0, len(rows), INSERT_BATCH):
        await directory.execute(sa.insert(N), rows[start : start + INSERT_BATCH])


async def delete_friend_request(directory: AsyncSession, request_id: int) -> None:
    """A request declined, cancelled (or removed by a block) takes its FRIEND_REQUEST notification along."""
    await directory.execute(
        sa.delete(N).where(N.source_id == request_id, N.kind == rules.NotificationKind.FRIEND_REQUEST.value)
    )


async def delete_for_server(directory: AsyncSession, server_id: int) -> None:
    """A deleted server (a direct conversation erased with its friendship too) takes its notifications
    and everyone's settings and snoozes for it and its channels."""
    await directory.execute(sa.delete(N).where(N.server_id == server_id))
    await directory.execute(sa.delete(P).where(P.server_id == server_id))


async def delete_for_channel(directory: AsyncSession, server_id: int, channel_id: int) -> None:
    """A deleted channel (a folder too: each of its channels, then itself, has a ChannelDeleted) takes its
    notifications and everyone's setting and snooze for it (both found through their server's index)."""
    await directory.execute(sa.delete(N).where(N.server_id == server_id, N.channel_id == channel_id))
    await directory.execute(sa.delete(P).where(P.server_id == server_id, P.scope_id == channel_id))


async def delete_for_messages(directory: AsyncSession, message_ids: list[int]) -> None:
    """A deleted message takes its notifications with it (by source: the unique index leads with it)."""
    await directory.execute(sa.delete(N).where(N.source_id.in_(message_ids)))


async def page(
    directory: AsyncSession, user_id: int, *, before_id: int | None, unread_only: bool, limit: int
) -> list[NotificationRow]:
    """Newest first: ids are time-ordered."""
    query = sa.select(N).where(N.user_id == user_id)
    if unread_only:
        query = query.where(N.read.is_(False))
    if before_id is not None:
        query = query.where(N.id < before_id)
    return list(await directory.scalars(query.order_by(N.id.desc()).limit(limit)))


async def unread_counts(directory: AsyncSession, user_id: int) -> tuple[int, int]:
    """(unread, unread HIGH), each counted up to COUNT_CAP."""
    unread = sa.select(N.level).where(N.user_id == user_id, N.read.is_(False)).limit(COUNT_CAP).subquery()
    high = (
        sa.select(N.id)
        .where(N.user_id == user_id, N.read.is_(False), N.level == rules.NotificationLevel.HIGH.value)
        .limit(COUNT_CAP)
        .subquery()
    )
    total = await directory.scalar(sa.select(sa.func.count()).select_from(unread)) or 0
    highs = await directory.scalar(sa.select(sa.func.count()).select_from(high)) or 0
    return int(total), int(highs)


async def mark_read(directory: AsyncSession, user_id: int, ids: list[int] | None) -> int:
    """Marks the user's notifications read (these ids, or all of them); how many changed."""
    query = sa.update(N).where(N.user_id == user_id, N.read.is_(False))
    if ids is not None:
        query = query.where(N.id.in_(ids))
    result = await directory.execute(
        query.values(read=True), execution_options={"synchronize_session": False}
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
