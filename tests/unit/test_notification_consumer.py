"""The notifications consumer on real SQLite files: a batch handled twice (the relay retries after a
crash) stores and pushes each notification once; a snooze stores without pushing; members who cannot
view the channel, and the author, get nothing; @everyone reaches the members page by page, @here only the
connected ones; a deleted
channel or server takes its notifications and settings along, and nothing else."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from db.ids import new_id
from subgraphs.channels.events import ChannelDeleted
from subgraphs.channels.models import ChannelRow
from subgraphs.servers.events import ServerDeleted
from subgraphs.users.notifications import consumer, repository
from subgraphs.users.notifications.models import NotificationPreferenceRow, NotificationRow
from tests.unit.notification_consumer_helpers import (
    SHARD,
    Tenant,
    add_server,
    connected,
    handle,
    message,
    pushed_topics,
    stored,
    tenant,
)

__all__ = ["tenant"]  # the fixture (notification_consumer_helpers.py)

pytestmark = pytest.mark.unit


async def test_a_retried_batch_stores_and_pushes_each_notification_once(tenant: Tenant) -> None:
    u = tenant.users
    event = message(tenant, f"<@{u['bob']}> <@{u['carol']}> <@{u['author']}> <@{u['outsider']}>")
    await handle(tenant, event)
    await handle(tenant, event)  # the relay retries a batch whose progress was not recorded
    assert await stored(tenant) == sorted([(u["bob"], "MENTION", True), (u["carol"], "MENTION", True)])
    assert await pushed_topics(tenant) == sorted([f"user:{u['bob']}", f"user:{u['carol']}"])


async def test_a_snooze_stores_without_pushing_and_muted_gets_nothing(tenant: Tenant) -> None:
    u = tenant.users
    async with tenant.database.directory_session() as directory, directory.begin():
        directory.add(
            NotificationPreferenceRow(
                user_id=u["bob"],
                scope_id=0,
                scope="GLOBAL",
                server_id=None,
                level=None,
                snoozed_until=datetime.now(UTC) + timedelta(hours=1),
            )
        )
        directory.add(
            NotificationPreferenceRow(
                user_id=u["carol"],
                scope_id=tenant.channel_id,
                scope="CHANNEL",
                server_id=tenant.server_id,
                level="NOTHING",
            )
        )
    await handle(tenant, message(tenant, f"<@{u['bob']}> <@{u['carol']}>"))
    assert await stored(tenant) == [(u["bob"], "MENTION", False)]
    assert await pushed_topics(tenant) == []


async def test_everyone_reaches_members_page_by_page_within_the_cap(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    u = tenant.users
    monkeypatch.setattr(consumer, "MEMBER_PAGE", 1)  # one member per round: the paging is exercised
    await handle(tenant, message(tenant, "@everyone", everyone=True))
    reached = {user for user, kind, _pushed in await stored(tenant) if kind == "EVERYONE"}
    assert reached == {u["bob"], u["carol"], u["extra"]}  # members only, never the author
    monkeypatch.setattr(consumer, "MAX_EVERYONE", 2)
    await handle(tenant, second := message(tenant, "@everyone again", everyone=True))
    async with tenant.database.directory_session() as directory:
        count = await directory.scalar(
            sa.select(sa.func.count()).where(NotificationRow.source_id == second.message_id)
        )
    assert count == 1  # the first two members by id: the author (skipped) and one other


async def test_here_reaches_the_connected_members_only(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    u = tenant.users
    monkeypatch.setattr(consumer, "MEMBER_PAGE", 1)
    online = connected(u["bob"], u["author"])
    here = message(tenant, f"@here, and <@{u['carol']}>", everyone=True)
    await handle(tenant, here, online=online)
    kinds = {user: kind for user, kind, _pushed in await stored(tenant)}
    assert kinds == {u["bob"]: "EVERYONE", u["carol"]: "MENTION"}  # not extra (offline), not the author
    # @everyone anywhere in it (outside code) reaches everyone; inside code it is text
    both = message(tenant, "@here @everyone", everyone=True)
    coded = message(tenant, "`@everyone` @here", everyone=True)
    await handle(tenant, both, coded, online=online)
    async with tenant.database.directory_session() as directory:
        rows = await directory.execute(sa.select(NotificationRow.source_id, NotificationRow.user_id))
        by_source: dict[int, set[int]] = {}
        for source_id, user_id in rows:
            by_source.setdefault(source_id, set()).add(user_id)
    assert by_source[both.message_id] == {u["bob"], u["carol"], u["extra"]}
    assert by_source[coded.message_id] == {u["bob"]}


async def test_followers_are_one_query_of_those_who_chose_all_messages(tenant: Tenant) -> None:
    u = tenant.users
    async with tenant.database.directory_session() as directory, directory.begin():
        for name, scope_id, level in (
            ("bob", tenant.server_id, "ALL_MESSAGES"),
            ("carol", tenant.channel_id, "ALL_MESSAGES"),
            ("extra", tenant.server_id, "MENTIONS_ONLY"),
        ):
            scope = "SERVER" if scope_id == tenant.server_id else "CHANNEL"
            directory.add(
                NotificationPreferenceRow(
                    user_id=u[name], scope_id=scope_id, scope=scope, server_id=tenant.server_id, level=level
                )
            )
    async with tenant.database.directory_session() as directory:
        found = await repository.followers(directory, tenant.server_id, tenant.channel_id, limit=10)
    # the tenant's kind comes along, and no folder of the server is followed
    assert found == repository.Followers("SERVER", sorted([u["bob"], u["carol"]]), folders_followed=False)
    await handle(tenant, message(tenant, "plain"))
    assert await stored(tenant) == sorted([(u["bob"], "MESSAGE", True), (u["carol"], "MESSAGE", True)])


async def _left(t: Tenant) -> tuple[list[tuple[str, int | None]], list[tuple[str, int]]]:
    """Each stored notification as (recipient, channel) and each preference as (user, scope id)."""
    names = {user_id: name for name, user_id in t.users.items()}
    async with t.database.directory_session() as directory:
        notes = await directory.execute(sa.select(NotificationRow.user_id, NotificationRow.channel_id))
        prefs = await directory.execute(
            sa.select(NotificationPreferenceRow.user_id, NotificationPreferenceRow.scope_id)
        )
        return (
            sorted((names[r.user_id], r.channel_id) for r in notes),
            sorted((names[r.user_id], r.scope_id) for r in prefs),
        )


async def test_a_deleted_channel_or_server_takes_its_notifications_and_settings(tenant: Tenant) -> None:
    u = tenant.users
    sibling = new_id(SHARD)  # another channel of the same server
    async with tenant.database.shard_session(SHARD) as shard, shard.begin():
        shard.add(
            ChannelRow(id=sibling, server_id=tenant.server_id, name="kept", kind="TEXT", parent_id=None)
        )
    other_server, other_channel = await add_server(tenant.database, u["author"], [u["author"], u["bob"]])
    gone = message(tenant, f"<@{u['bob']}> <@{u['carol']}> in the doomed channel")
    kept = replace(message(tenant, f"<@{u['bob']}> next door"), channel_id=sibling)
    elsewhere = replace(
        message(tenant, f"<@{u['bob']}> elsewhere"), server_id=other_server, channel_id=other_channel
    )
    await handle(tenant, gone, kept, elsewhere)
    async with tenant.database.directory_session() as directory, directory.begin():
        for name, scope, scope_id, server_id in (
            ("bob", "GLOBAL", 0, None),
            ("bob", "CHANNEL", tenant.channel_id, tenant.server_id),
            ("carol", "CHANNEL", tenant.channel_id, tenant.server_id),
            ("bob", "CHANNEL", sibling, tenant.server_id),
            ("carol", "SERVER", tenant.server_id, tenant.server_id),
            ("bob", "SERVER", other_server, other_server),
        ):
            directory.add(
                NotificationPreferenceRow(
                    user_id=u[name], scope_id=scope_id, scope=scope, server_id=server_id, level="ALL_MESSAGES"
                )
            )
    notes, prefs = await _left(tenant)
    assert notes == sorted(
        [("bob", tenant.channel_id), ("carol", tenant.channel_id), ("bob", sibling), ("bob", other_channel)]
    )

    deleted = ChannelDeleted(tenant.channel_id, tenant.server_id, None)
    await handle(tenant, deleted, deleted)  # at least once: a second copy changes nothing
    notes, prefs = await _left(tenant)
    assert notes == sorted([("bob", sibling), ("bob", other_channel)])
    assert prefs == sorted([("bob", 0), ("bob", sibling), ("carol", tenant.server_id), ("bob", other_server)])

    await handle(tenant, ServerDeleted(tenant.server_id))
    notes, prefs = await _left(tenant)
    assert notes == [("bob", other_channel)]  # another server's are kept
    assert prefs == sorted([("bob", 0), ("bob", other_server)])
