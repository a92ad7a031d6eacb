"""What the signed-in user does with their notifications: list, count, mark read, choose settings and
snooze. Receives the unit of work and never commits (the resolver does)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from subgraphs.kernel.errors import ErrorCode, NotFound, ValidationFailed
from subgraphs.kernel.tenancy import access
from subgraphs.kernel.tenancy.access_checks import access_channel, access_server
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.users.notifications import repository, rules
from subgraphs.users.notifications.models import (
    FOLDER_SCOPE,
    GLOBAL_SCOPE,
    NotificationPreferenceRow,
    NotificationRow,
)

MAX_MARK_IDS = 100  # ids per markNotificationsRead (or `all`)
MAX_SNOOZE = timedelta(days=366)
MAX_PREFERENCES = 1_000  # scopes listed by notificationSettings


@dataclass(frozen=True)
class Scope:
    kind: str  # GLOBAL | SERVER | FOLDER | CHANNEL
    scope_id: int
    server_id: int | None


@dataclass(frozen=True)
class ScopeSettings:
    scope_id: int
    level: rules.NotificationSetting | None  # None: inherited
    snoozed_until: datetime | None  # None: not snoozed (or the snooze is over)
    folder_level: rules.NotificationSetting | None = None  # a channel's: the level set on its folder now


@dataclass
class ServerSettings:
    server_id: int
    level: rules.NotificationSetting | None = None
    snoozed_until: datetime | None = None
    channels: list[ScopeSettings] = field(default_factory=list)
    direct: bool = False  # a direct conversation: its default is DIRECT_DEFAULT_SETTING


@dataclass(frozen=True)
class Settings:
    snoozed_until: datetime | None
    servers: list[ServerSettings]


# --- the list -----------------------------------------------------------------------------------------


async def page(
    uow: UnitOfWork, user_id: int, *, before_id: int | None, unread_only: bool, size: int
) -> tuple[list[NotificationRow], bool]:
    """A page newest first, and whether older ones follow."""
    rows = await repository.page(
        uow.directory(), user_id, before_id=before_id, unread_only=unread_only, limit=size + 1
    )
    return rows[:size], len(rows) > size


async def unread_counts(uow: UnitOfWork, user_id: int) -> tuple[int, int]:
    return await repository.unread_counts(uow.directory(), user_id)


async def mark_read(uow: UnitOfWork, user_id: int, ids: list[int] | None, everything: bool) -> int:
    """Marks these notifications (only the user's own: others' ids change nothing) or all of them."""
    if everything == (ids is not None):
        raise ValidationFailed("Give either 'ids' or 'all: true'.", code=ErrorCode.REQUIRED, field="ids")
    if ids is not None and not 1 <= len(ids) <= MAX_MARK_IDS:
        raise ValidationFailed(
            f"Mark between 1 and {MAX_MARK_IDS} notifications at a time (or all).",
            code=ErrorCode.LIMIT_REACHED,
            field="ids",
        )
    return await repository.mark_read(uow.directory(), user_id, None if everything else ids)


# --- settings and snooze ----------------------------------------------------------------------------


async def scope_of(uow: UnitOfWork, user_id: int, server_id: int | None, channel_id: int | None) -> Scope:
    """The scope named by these ids, if the user may set anything there: a server they are a member of,
    a channel or folder they can view. Missing and hidden are the same NOT_FOUND."""
    if channel_id is not None:
        channel = await access_channel(uow, user_id, channel_id)
        if server_id is not None and channel.server.server_id != server_id:
            raise NotFound("No such channel.", field="channelId")  # as if missing: not in that server
        kind = FOLDER_SCOPE if channel.kind == "FOLDER" else "CHANNEL"
        return Scope(kind, channel_id, channel.server.server_id)
    if server_id is not None:
        await access_server(uow, user_id, server_id)
        return Scope("SERVER", server_id, server_id)
    return Scope("GLOBAL", GLOBAL_SCOPE, None)


async def set_level(
    uow: UnitOfWork,
    user_id: int,
    server_id: int | None,
    channel_id: int | None,
    level: rules.NotificationSetting | None,
) -> None:
    """A server's, a folder's or a channel's setting (None: back to inheriting: a channel its folder's,
    then the server's, then the default)."""
    if server_id is None and channel_id is None:
        raise ValidationFailed(
            "Name a server or a channel: settings are per server and per channel.",
            code=ErrorCode.REQUIRED,
            field="serverId",
        )
    scope = await scope_of(uow, user_id, server_id, channel_id)
    await repository.save_preference(
        uow.directory(),
        user_id,
        scope.kind,
        scope.scope_id,
        scope.server_id,
        level=level.value if level is not None else None,
    )


async def snooze(
    uow: UnitOfWork,
    user_id: int,
    until: datetime | None,
    server_id: int | None,
    channel_id: int | None,
    now: datetime,
) -> None:
    """Hold pushes back until `until` (None: end the snooze), everywhere or for a server, a folder (its
    channels) or a channel."""
    if until is not None:
        until = until if until.tzinfo is not None else until.replace(tzinfo=UTC)
        if until <= now:
            raise ValidationFailed(
                "'until' must be in the future.", code=ErrorCode.INVALID_INPUT, field="until"
            )
        if until > now + MAX_SNOOZE:
            raise ValidationFailed(
                f"Snooze for at most {MAX_SNOOZE.days} days.", code=ErrorCode.LIMIT_REACHED, field="until"
            )
    scope = await scope_of(uow, user_id, server_id, channel_id)
    await repository.save_preference(
        uow.directory(), user_id, scope.kind, scope.scope_id, scope.server_id, snoozed_until=until
    )


async def settings(uow: UnitOfWork, user_id: int, now: datetime) -> Settings:
    """Every scope the user configured, grouped by server (snoozes that are over read as none); folders
    are listed among the channels, and a channel carries the level set on the folder it is in now."""
    rows = await repository.preference_rows(uow.directory(), user_id, MAX_PREFERENCES)
    glob: datetime | None = None
    servers: dict[int, ServerSettings] = {}
    folder_levels: dict[int, rules.NotificationSetting] = {}  # folder id: the level set on it
    for row in rows:
        found = _scope_settings(row, now)
        if row.scope == "GLOBAL":
            glob = found.snoozed_until
            continue
        if row.server_id is None or (found.level is None and found.snoozed_until is None):
            continue  # a scope whose snooze is over and that sets no level: nothing to show
        server = servers.setdefault(row.server_id, ServerSettings(row.server_id))
        if row.scope == "SERVER":
            server.level, server.snoozed_until = found.level, found.snoozed_until
        else:
            server.channels.append(found)
        if row.scope == FOLDER_SCOPE and found.level is not None:
            folder_levels[row.scope_id] = found.level
    kinds = await repository.server_kinds(uow.directory(), list(servers))
    for server in servers.values():
        server.direct = rules.is_direct(kinds.get(server.server_id))
    if folder_levels:
        await _with_folder_levels(uow, user_id, rows, servers, folder_levels)
    return Settings(glob, list(servers.values()))


async def _with_folder_levels(
    uow: UnitOfWork,
    user_id: int,
    rows: list[NotificationPreferenceRow],
    servers: dict[int, ServerSettings],
    folder_levels: dict[int, rules.NotificationSetting],
) -> None:
    """Give each listed channel the level set on the folder it is in now: read from the shards for the
    channels of the servers where a folder has a level, and those alone (one query per shard, then the
    access check of the channels found in a folder: where a channel is placed is only told to those who
    can view it; the others' entries keep the server's level)."""
    folder_servers = {row.server_id for row in rows if row.scope_id in folder_levels}
    channels = {row.scope_id for row in rows if row.scope == "CHANNEL" and row.server_id in folder_servers}
    folders: dict[int, int] = {}
    for shard, ids in (await uow.group_by_shard(sorted(channels))).items():
        async with uow.reading(shard) as session:
            placed = await repository.channel_folders(session, ids)
            visible = await access.visible_channel_ids(session, sorted(placed), user_id)
            folders |= {c: f for c, f in placed.items() if c in visible}
    for server in servers.values():
        server.channels = [
            replace(c, folder_level=folder_levels.get(folders[c.scope_id])) if c.scope_id in folders else c
            for c in server.channels
        ]


def _scope_settings(row: NotificationPreferenceRow, now: datetime) -> ScopeSettings:
    running = row.snoozed_until if rules.snoozed([row.snoozed_until], now) else None
    level = rules.NotificationSetting(row.level) if row.level is not None else None
    return ScopeSettings(row.scope_id, level, running)
