"""Folder settings cascade to the folder's channels, in the consumer on real SQLite files: a muted folder
silences mentions in its channels unless a channel's own setting overrides it; a folder followed at
ALL_MESSAGES makes its channels' messages reach its followers (a quiet message costs one directory query
while no folder of the server is followed); a channel moved out of its folder stops following it at once
(the folder is read when the message is handled); a folder's snooze holds its channels' pushes back; a
deleted folder takes its settings and snoozes along."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from db.ids import new_id
from subgraphs.channels.events import ChannelDeleted
from subgraphs.channels.models import ChannelRow
from subgraphs.users.notifications import repository
from subgraphs.users.notifications.models import NotificationPreferenceRow
from tests.unit.notification_consumer_helpers import (
    SHARD,
    Tenant,
    handle,
    message,
    pushed_topics,
    stored,
    tenant,
)

__all__ = ["tenant"]  # the fixture (notification_consumer_helpers.py)

pytestmark = pytest.mark.unit


async def add_folder(t: Tenant) -> tuple[int, int]:
    """A folder holding the tenant's channel and a sibling channel: (folder id, sibling id)."""
    folder, sibling = new_id(SHARD), new_id(SHARD)
    async with t.database.shard_session(SHARD) as shard, shard.begin():
        shard.add(ChannelRow(id=folder, server_id=t.server_id, name="Folder", kind="FOLDER", parent_id=None))
        await shard.flush()
        shard.add(ChannelRow(id=sibling, server_id=t.server_id, name="next", kind="TEXT", parent_id=folder))
        await shard.execute(
            sa.update(ChannelRow).where(ChannelRow.id == t.channel_id).values(parent_id=folder)
        )
    return folder, sibling


async def move_out(t: Tenant, channel_id: int) -> None:
    async with t.database.shard_session(SHARD) as shard, shard.begin():
        await shard.execute(sa.update(ChannelRow).where(ChannelRow.id == channel_id).values(parent_id=None))


async def prefer(
    t: Tenant, name: str, scope: str, scope_id: int, level: str | None, snoozed_until: datetime | None = None
) -> None:
    async with t.database.directory_session() as directory, directory.begin():
        directory.add(
            NotificationPreferenceRow(
                user_id=t.users[name],
                scope_id=scope_id,
                scope=scope,
                server_id=t.server_id,
                level=level,
                snoozed_until=snoozed_until,
            )
        )


@contextmanager
def selects() -> Iterator[list[str]]:
    """The SELECT statements run meanwhile."""
    seen: list[str] = []

    def counter(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", counter)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", counter)


async def test_a_muted_folder_silences_its_channels_unless_the_channel_overrides(tenant: Tenant) -> None:
    u = tenant.users
    folder, sibling = await add_folder(tenant)
    await prefer(tenant, "bob", "FOLDER", folder, "NOTHING")
    await prefer(tenant, "carol", "FOLDER", folder, "NOTHING")
    await prefer(tenant, "carol", "CHANNEL", tenant.channel_id, "MENTIONS_ONLY")  # her override
    await prefer(tenant, "extra", "SERVER", tenant.server_id, "ALL_MESSAGES")
    await prefer(tenant, "extra", "FOLDER", folder, "NOTHING")  # the folder's wins over the server's
    await handle(tenant, message(tenant, f"<@{u['bob']}> <@{u['carol']}> <@{u['extra']}>"))
    await handle(tenant, message(tenant, "@everyone", everyone=True))
    assert await stored(tenant) == [(u["carol"], "MENTION", True), (u["carol"], "EVERYONE", True)]
    # The sibling channel (no override) is muted for all three; the folder's channels alone.
    in_sibling = message(tenant, f"<@{u['bob']}> <@{u['carol']}> <@{u['extra']}>")
    await handle(tenant, replace(in_sibling, channel_id=sibling))
    assert len(await stored(tenant)) == 2


async def test_a_followed_folder_reaches_its_channels_until_one_moves_out(tenant: Tenant) -> None:
    u = tenant.users
    async with tenant.database.directory_session() as directory:
        before = await repository.followers(directory, tenant.server_id, tenant.channel_id, limit=10)
    assert before == repository.Followers("SERVER", [], folders_followed=False)
    folder, _sibling = await add_folder(tenant)
    await prefer(tenant, "bob", "FOLDER", folder, "ALL_MESSAGES")
    await prefer(tenant, "carol", "FOLDER", folder, "ALL_MESSAGES")
    await prefer(tenant, "carol", "CHANNEL", tenant.channel_id, "MENTIONS_ONLY")  # not this channel
    async with tenant.database.directory_session() as directory:
        found = await repository.followers(directory, tenant.server_id, tenant.channel_id, limit=10)
        assert found == repository.Followers("SERVER", [], folders_followed=True)
        of_folder = await repository.folder_followers(directory, tenant.server_id, folder, limit=10)
        assert of_folder == sorted([u["bob"], u["carol"]])

    await handle(tenant, message(tenant, "plain, in the folder"))
    assert await stored(tenant) == [(u["bob"], "MESSAGE", True)]

    await move_out(tenant, tenant.channel_id)
    await handle(tenant, message(tenant, "plain, out of the folder"))
    assert await stored(tenant) == [(u["bob"], "MESSAGE", True)]  # nothing more


async def test_a_quiet_message_costs_one_query_while_no_folder_is_followed(tenant: Tenant) -> None:
    folder, _sibling = await add_folder(tenant)
    await prefer(tenant, "bob", "FOLDER", folder, "NOTHING")  # a muted folder needs nothing read
    with selects() as seen:
        await handle(tenant, message(tenant, "nobody is addressed"))
    consumer_selects = [s for s in seen if "notification_preferences" in s or "channels" in s]
    assert len(consumer_selects) == 1, seen
    await prefer(tenant, "carol", "FOLDER", folder, "ALL_MESSAGES")
    with selects() as seen:
        await handle(tenant, message(tenant, "now a folder is followed"))
    assert any("parent_id" in s for s in seen), seen  # the channel's folder is read
    assert await stored(tenant) == [(tenant.users["carol"], "MESSAGE", True)]


async def test_a_folder_snooze_stores_without_pushing(tenant: Tenant) -> None:
    u = tenant.users
    folder, _sibling = await add_folder(tenant)
    await prefer(tenant, "bob", "FOLDER", folder, None, datetime.now(UTC) + timedelta(hours=1))
    await handle(tenant, message(tenant, f"<@{u['bob']}> <@{u['carol']}>"))
    assert await stored(tenant) == sorted([(u["bob"], "MENTION", False), (u["carol"], "MENTION", True)])
    assert await pushed_topics(tenant) == [f"user:{u['carol']}"]
    await move_out(tenant, tenant.channel_id)
    await handle(tenant, message(tenant, f"<@{u['bob']}> out of the folder"))
    assert (u["bob"], "MENTION", True) in await stored(tenant)


async def test_a_deleted_folder_takes_its_settings_and_snoozes_along(tenant: Tenant) -> None:
    u = tenant.users
    folder, sibling = await add_folder(tenant)
    later = datetime.now(UTC) + timedelta(hours=1)
    await prefer(tenant, "bob", "FOLDER", folder, "NOTHING")
    await prefer(tenant, "carol", "FOLDER", folder, None, later)
    await prefer(tenant, "carol", "CHANNEL", tenant.channel_id, "ALL_MESSAGES")
    await prefer(tenant, "bob", "SERVER", tenant.server_id, "ALL_MESSAGES")
    # As the channels context emits them: each channel of the folder, then the folder.
    await handle(
        tenant,
        ChannelDeleted(tenant.channel_id, tenant.server_id, folder),
        ChannelDeleted(sibling, tenant.server_id, folder),
        ChannelDeleted(folder, tenant.server_id, None),
    )
    async with tenant.database.directory_session() as directory:
        left = await directory.execute(
            sa.select(NotificationPreferenceRow.user_id, NotificationPreferenceRow.scope_id)
        )
        assert sorted(left) == [(u["bob"], tenant.server_id)]
