"""Notifications' retention (subgraphs/users/notifications/retention.py) on SQLite and on PostgreSQL:
rows older than `keep_days` go, each user keeps their newest `keep_per_user`, in batches, and a second
pass deletes nothing; through the router, the worker's pruning leaves a user the newest of their
notifications."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from db.engines import Database
from db.ids import DIRECTORY_SHARD, lowest_id_at, new_id
from db.migrate import upgrade
from db.shardmap import ShardMap
from subgraphs.users.models import UserRow
from subgraphs.users.notifications import retention
from subgraphs.users.notifications.models import NotificationRow
from tests.harness.services import PostgresServer
from tests.harness.stack import Stack, start_embedded
from tests.integration.flows import send
from tests.integration.notification_flows import community, listed, until_listed

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SEQUENCE = itertools.count()  # the low bits of made-up IDs: two made at one moment never collide


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        db = Database(
            f"sqlite+aiosqlite:///{tmp_path}/directory.db",
            ShardMap.parse(f"0-1=sqlite+aiosqlite:///{tmp_path}/shard_{{shard}}.db", 2),
        )
    else:  # a fresh database on the full stack's PostgreSQL: the stack's own notifications stay untouched
        full_stack: Stack = request.getfixturevalue("full_stack")
        postgres = next(s for s in full_stack.services if isinstance(s, PostgresServer))
        run = secrets.token_hex(3)
        urls = [postgres.create_database(f"retention_{name}_{run}") for name in ("dir", "shards")]
        db = Database(urls[0], ShardMap.parse(f"0-1={urls[1]}", 2))
    await upgrade(db)
    yield db
    await db.dispose()


async def add_user(database: Database, name: str) -> int:
    user_id, username = new_id(DIRECTORY_SHARD), f"{name}{secrets.token_hex(3)}"
    async with database.directory_session() as directory, directory.begin():
        directory.add(
            UserRow(
                id=user_id,
                username=username,
                username_key=username,
                email=f"{username}@example.test",
                password_hash="",
                first_name=name,
                last_name="Test",
            )
        )
    return user_id


async def notify_at(database: Database, user_id: int, moments: list[datetime]) -> list[int]:
    """Notifications made at these moments (their IDs carry the time, as new_id's do)."""
    ids = [lowest_id_at(moment) + next(SEQUENCE) for moment in moments]
    async with database.directory_session() as directory, directory.begin():
        directory.add_all(
            NotificationRow(
                id=notification_id,
                user_id=user_id,
                kind="MENTION",
                level="HIGH",
                source_id=notification_id,
                created_at=moment,
            )
            for notification_id, moment in zip(ids, moments, strict=True)
        )
    return ids


async def kept(database: Database, user_id: int) -> list[int]:
    async with database.directory_session() as directory:
        return list(
            await directory.scalars(
                sa.select(NotificationRow.id)
                .where(NotificationRow.user_id == user_id)
                .order_by(NotificationRow.id)
            )
        )


async def test_old_notifications_go_and_each_user_keeps_their_newest(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 4)  # several batches: the loop is exercised
    ann, bob, cem = [await add_user(database, n) for n in ("ann", "bob", "cem")]
    old = await notify_at(database, ann, [NOW - timedelta(days=100, minutes=m) for m in range(9)])
    recent = await notify_at(database, ann, [NOW - timedelta(days=10, minutes=m) for m in range(3)])
    busy = await notify_at(database, bob, [NOW - timedelta(hours=h) for h in range(25)])
    quiet = await notify_at(database, cem, [NOW - timedelta(hours=h) for h in range(10)])

    pruned = await retention.prune(database, retention.Retention(keep_days=90, keep_per_user=10), NOW)

    assert (pruned.expired, pruned.over_cap) == (len(old), 15)
    assert await kept(database, ann) == sorted(recent)
    assert await kept(database, bob) == sorted(busy)[-10:]  # the newest ten
    assert await kept(database, cem) == sorted(quiet)  # exactly at the cap: untouched
    again = await retention.prune(database, retention.Retention(keep_days=90, keep_per_user=10), NOW)
    assert (again.expired, again.over_cap) == (0, 0)


# --- through the router: the worker prunes -------------------------------------------------------------


@pytest.fixture(scope="module")
def capped_stack() -> Iterator[Stack]:
    """An embedded stack whose worker keeps 10 notifications per user and prunes every second."""
    stack = start_embedded(
        {
            "BEEP_NOTIFICATION_KEEP_PER_USER": "10",
            "BEEP_NOTIFICATION_PRUNE_SECONDS": "1",
            "BEEP_MESSAGE_SEND_LIMIT": "100",  # the test sends 14 in a row
        }
    )
    yield stack
    stack.stop()


async def test_the_worker_leaves_each_user_their_newest_notifications(capped_stack: Stack) -> None:
    _server, general, people = await community(capped_stack, "bob")
    _owner, as_owner = people["owner"]
    bob, as_bob = people["bob"]
    sent = [(await send(as_owner, general, f"ping {i} @{bob.username}"))["id"] for i in range(14)]
    await until_listed(as_bob, sent[-1])
    deadline = asyncio.get_running_loop().time() + 20
    while len(found := await listed(as_bob)) > 10:
        assert asyncio.get_running_loop().time() < deadline, f"{len(found)} notifications kept"
        await asyncio.sleep(0.5)
    assert [n["messageId"] for n in found] == list(reversed(sent[-10:]))  # newest first
    counts = await as_bob.data("{ notificationCounts { unread } }")
    assert counts["notificationCounts"]["unread"] == 10
