"""`beep tenants move` on the full stack (PostgreSQL, two physical databases, Redis, a process per
subgraph): a server with channels, a folder, roles, overwrites and members moves to a shard in the other
database while its members keep sending messages through the router. Nothing acknowledged is lost or
duplicated, IDs stay valid, permissions are intact, a live subscription keeps flowing, the source shard
keeps nothing of the tenant and a neighbour on that shard is untouched."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from db.engines import Database
from db.ids import created_at, shard_of
from db.locator import Relocation, TenantMove
from db.shardmap import ShardMap
from db.tenant_move import MoveError, MoveReport, TenantMover
from db.tenants import Tenant
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.errors import error_types
from subgraphs.kernel.events.bus import InProcessBus
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.kernel.web.mutations import run_in_transaction
from subgraphs.messages import service as messages
from subgraphs.messages.models import MessageRow
from tests.harness.client import GraphQLClient
from tests.harness.stack import BEEP, Stack
from tests.integration.flows import (
    JOIN_SERVER,
    MESSAGE_EVENTS,
    SEND_MESSAGE,
    create_channel,
    create_server,
    grant_role,
    send,
    sign_up,
    subscribe_settled,
)
from tests.integration.flows import _tenant as seeded_tenant
from tests.integration.role_flows import VIEW, bits, overwrite

pytestmark = pytest.mark.full

HISTORY = """query($c: ID!, $before: String) {
  messages(channelId: $c, first: 100, before: $before) {
    edges { node { id content } } pageInfo { hasNextPage endCursor } } }"""
VIEW_OF = """query($s: ID!, $c: ID!) {
  server(id: $s) { name myPermissions roles { name permissions } channels { name } }
  channel(id: $c) { name myPermissions overwrites { targetKind targetId allow deny } } }"""
SEEDED = 400  # history before the move (sent through the router)
SENDERS = 5
ARCHIVED = 20_000  # older history, written straight into the shard: a switch long enough to meet writers


@dataclass
class Sender:
    """A member sending numbered messages with nonces, retrying a failed send with the same nonce (what a
    client does), and keeping what the server acknowledged."""

    name: str
    client: GraphQLClient
    channel_id: str
    acknowledged: dict[str, str] = field(default_factory=dict)  # nonce -> message id
    failures: list[str] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            nonce = f"{self.name}-{n}"
            await self.send(nonce)
            n += 1

    async def send(self, nonce: str) -> None:
        for _ in range(5):
            result = await self.client.execute(
                SEND_MESSAGE, {"input": {"channelId": self.channel_id, "content": nonce, "nonce": nonce}}
            )
            payload = (result.data or {}).get("sendMessage") or {}
            if not result.errors and payload.get("__typename") == "Message":
                self.acknowledged[nonce] = payload["id"]
                return
            self.failures.append(f"{nonce}: {result.errors or payload}")
            await asyncio.sleep(0.2)
        raise AssertionError(f"{nonce} was never acknowledged: {self.failures[-5:]}")


@pytest.fixture
async def database(full_stack: Stack) -> AsyncIterator[Database]:
    directory, shards_a, shards_b = full_stack.database_urls
    db = Database(directory, ShardMap.parse(f"0-31={shards_a};32-63={shards_b}", 64))
    yield db
    await db.dispose()


async def _history(client: GraphQLClient, channel_id: str) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    before = None
    while True:
        page = (await client.data(HISTORY, {"c": channel_id, "before": before}))["messages"]
        found.extend(edge["node"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            return found
        before = page["pageInfo"]["endCursor"]


async def _tenant_rows(database: Database, shard: int, server_id: int) -> dict[str, Any]:
    """Per table: the tenant's rows on a shard, as md5 digests (so copies can be compared)."""
    location = database.location(shard)
    found: dict[str, Any] = {}
    async with database.engine(location.url).connect() as conn:
        for table in ("servers", "members", "roles", "member_roles", "channels", "messages", "audit_log"):
            column = "id" if table == "servers" else "server_id"
            query = f'SELECT md5(t::text) FROM "{location.schema}".{table} t WHERE {column} = :s ORDER BY 1'
            found[table] = list((await conn.execute(sa.text(query), {"s": server_id})).scalars())
        overwrites = (
            f'SELECT count(*) FROM "{location.schema}".channel_overwrites WHERE channel_id IN '
            f'(SELECT id FROM "{location.schema}".channels WHERE server_id = :s)'
        )
        found["channel_overwrites"] = (await conn.execute(sa.text(overwrites), {"s": server_id})).scalar()
    return found


async def _bulk_history(database: Database, shard: int, server_id: int, channel_id: int, author: int) -> None:
    """ARCHIVED messages a day older than the channel (IDs 1 ms apart, in its shard): older than anything
    the suite writes, so they cannot take a real message's ID (same shard bits, same 12-bit sequence)."""
    location = database.location(shard)
    insert = sa.text(
        f'INSERT INTO "{location.schema}".messages (id, channel_id, server_id, author_id, content) '
        "SELECT c - (CAST(g AS BIGINT) + 86400000) * 4194304, c, CAST(:s AS BIGINT), CAST(:a AS BIGINT), "
        "'archived ' || g "
        "FROM generate_series(1, :n) g, CAST(:c AS BIGINT) c"
    )
    async with database.engine(location.url).begin() as conn:
        await conn.execute(insert, {"c": channel_id, "s": server_id, "a": author, "n": ARCHIVED})


async def _move(stack: Stack, server_id: str, shard: int) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        *BEEP,
        "tenants",
        "move",
        server_id,
        "--to",
        str(shard),
        env=stack.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    print(err.decode(), file=sys.stderr)
    assert process.returncode == 0, err.decode()
    return dict(json.loads(out))


async def test_a_tenant_moves_online_while_members_send_messages(
    full_stack: Stack, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    anonymous = GraphQLClient(full_stack.router_url)
    owner = await sign_up(anonymous, "own")
    members = [await sign_up(anonymous, f"m{i}") for i in range(SENDERS)]
    eve = await sign_up(anonymous, "eve")
    as_owner, as_eve = anonymous.with_token(owner.token), anonymous.with_token(eve.token)

    # Given a server with a private folder, a moderators role, overwrites, members and history...
    server = await create_server(as_owner, "Moving House")
    server_id = server["id"]
    general = await create_channel(as_owner, server_id, "general")
    staff = await create_channel(as_owner, server_id, "Staff", kind="FOLDER")
    mod_chat = await create_channel(as_owner, server_id, "mod-chat", parentId=staff["id"])
    for account in [*members, eve]:
        joined = await anonymous.with_token(account.token).data(JOIN_SERVER, {"id": server_id})
        assert joined["joinServer"]["__typename"] == "Server"
    mods = await grant_role(as_owner, server_id, members[0].user_id, Permission.MANAGE_MESSAGES)
    assert (await overwrite(as_owner, staff["id"], "ROLE", server_id, deny=VIEW))["__typename"] == "Channel"
    assert (await overwrite(as_owner, staff["id"], "ROLE", mods, allow=VIEW))["__typename"] == "Channel"
    muted = await overwrite(
        as_owner, general["id"], "MEMBER", eve.user_id, deny=bits(Permission.SEND_MESSAGES)
    )
    assert muted["__typename"] == "Channel"
    seeded = Sender("seed", as_owner, general["id"])
    for start in range(0, SEEDED, 20):
        await asyncio.gather(*(seeded.send(f"seed-{n}") for n in range(start, start + 20)))
    moderator = Sender("mod", anonymous.with_token(members[0].token), mod_chat["id"])
    await moderator.send("mod-before")

    source = shard_of(int(server_id))
    archive = await create_channel(as_owner, server_id, "archive")
    await _bulk_history(database, source, int(server_id), int(archive["id"]), int(owner.user_id))
    target = 40 if source < 32 else 5  # in the other physical database
    # A neighbour on the same shard (servers land on a random shard: this one is placed in-process).
    near_owner = await sign_up(anonymous, "near")
    near = Principal(
        user_id=int(near_owner.user_id), username=near_owner.username, token_id=None, expires_at=0
    )
    near_server, near_channel = await seeded_tenant(database, near, source, monkeypatch)
    near_before = await _tenant_rows(database, source, near_server)
    views_before = {
        account.username: await anonymous.with_token(account.token).data(
            VIEW_OF, {"s": server_id, "c": mod_chat["id"]}
        )
        for account in (owner, members[0], members[1], eve)
    }
    rows_before = await _tenant_rows(database, source, int(server_id))

    async with as_owner.subscriptions() as connection:
        live = await subscribe_settled(connection, MESSAGE_EVENTS, {"channelId": general["id"]})
        # ...when it moves while every member keeps sending...
        stop = asyncio.Event()
        senders = [
            Sender(f"s{i}", anonymous.with_token(account.token), general["id"])
            for i, account in enumerate(members)
        ]
        sending = [asyncio.create_task(s.run(stop)) for s in senders]
        await asyncio.sleep(1.0)
        report = await _move(full_stack, server_id, target)
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*sending)
        after_move = await send(as_owner, general["id"], "after the move", nonce="after")

        # ...the live stream saw every acknowledged message once, and keeps flowing after the move.
        acknowledged = {nonce: mid for s in senders for nonce, mid in s.acknowledged.items()}
        expected_live = {*acknowledged.values(), after_move["id"]}
        seen: list[str] = []
        while after_move["id"] not in seen:
            event = await live.next(timeout=20)
            assert event["type"] == "next", event
            created = event["payload"]["data"]["messageEvents"]
            seen.append(created["message"]["id"])
        assert sorted(seen) == sorted(expected_live)

    print(f"move report: {json.dumps(report)}", file=sys.stderr)
    print(
        f"sent during the move: {len(acknowledged)}, client-visible failures: "
        f"{sum(len(s.failures) for s in senders)} {[f for s in senders for f in s.failures][:3]}",
        file=sys.stderr,
    )
    during = {
        phase: sum(1 for mid in acknowledged.values() if start <= created_at(int(mid)) < end)
        for phase, start, end in _phases(report)
    }
    print(f"acknowledged messages created per phase of the move: {during}", file=sys.stderr)
    retried = sum(
        "moved shard under a write" in line
        for name in ("messages.log", "messages-2.log")
        for line in (full_stack.workdir / name).read_text().splitlines()
    )
    print(f"writes that met the fence and were retried on the new shard: {retried}", file=sys.stderr)
    assert (report["from_shard"], report["to_shard"]) == (source, target)
    assert len(acknowledged) >= 50, "the senders should have been busy during the move"

    # Every acknowledged message is in the history, once, under the id it was acknowledged with.
    history = await _history(as_owner, general["id"])
    ids = [m["id"] for m in history]
    assert len(ids) == len(set(ids)), "a message appears twice"
    by_content = {m["content"]: m["id"] for m in history}
    everything = {**seeded.acknowledged, **acknowledged, "after the move": after_move["id"]}
    assert {content: by_content.get(content) for content in everything} == everything
    assert len(history) == len(everything)
    for message_id in [*list(acknowledged.values())[:: max(1, len(acknowledged) // 15)], after_move["id"]]:
        one = await as_owner.data("query($id: ID!) { message(id: $id) { id } }", {"id": message_id})
        assert one["message"] == {"id": message_id}
    mod_history = await _history(anonymous.with_token(members[0].token), mod_chat["id"])
    assert [m["id"] for m in mod_history] == [moderator.acknowledged["mod-before"]]

    # Permissions, roles and overwrites are intact; writes keep working under the same rules.
    for account in (owner, members[0], members[1], eve):
        view = await anonymous.with_token(account.token).data(VIEW_OF, {"s": server_id, "c": mod_chat["id"]})
        assert view == views_before[account.username], account.username
    refused = await as_eve.data(SEND_MESSAGE, {"input": {"channelId": general["id"], "content": "hi"}})
    assert refused["sendMessage"]["__typename"] == "PermissionError"
    await moderator.send("mod-after")
    removed = await moderator.client.data(
        "mutation($id: ID!) { deleteMessage(id: $id) { __typename } }", {"id": seeded.acknowledged["seed-0"]}
    )
    assert removed["deleteMessage"]["__typename"] == "MessageDeleted"
    renamed = await as_owner.data(
        """mutation($i: UpdateChannelInput!) { updateChannel(input: $i) { __typename } }""",
        {"i": {"id": general["id"], "name": "general-moved"}},
    )
    assert renamed["updateChannel"]["__typename"] == "Channel"

    # The source shard keeps nothing of the tenant; its neighbour there is untouched; the directory knows.
    assert set(map(len_or_count, (await _tenant_rows(database, source, int(server_id))).values())) == {0}
    moved_rows = await _tenant_rows(database, target, int(server_id))
    # All of general's but seed-0 (deleted after the move), mod-chat's two and the archive.
    assert len(moved_rows["messages"]) == len(everything) - 1 + 2 + ARCHIVED
    archived = await as_owner.data(HISTORY, {"c": archive["id"], "before": None})
    assert len(archived["messages"]["edges"]) == 100 and archived["messages"]["pageInfo"]["hasNextPage"]
    assert (
        moved_rows["roles"] == rows_before["roles"]
        and moved_rows["member_roles"] == rows_before["member_roles"]
    )
    assert await _tenant_rows(database, source, near_server) == near_before
    as_near = anonymous.with_token(near_owner.token)
    near_history = await _history(as_near, str(near_channel))
    assert [m["content"] for m in near_history] == [f"{source}:{i}" for i in (2, 1, 0)]
    async with database.directory_session() as directory:
        tenant = await directory.get(Tenant, int(server_id))
        assert tenant is not None and tenant.shard == target
        state = await directory.scalar(
            sa.select(TenantMove.state).where(TenantMove.tenant_id == int(server_id))
        )
        assert state == "DONE"
        relocated = await directory.scalar(
            sa.select(Relocation.shard).where(Relocation.entity_id == int(server_id))
        )
        assert relocated == target


def _phases(report: dict[str, Any]) -> list[tuple[str, datetime, datetime]]:
    marks = [(name, datetime.fromisoformat(at)) for name, at in report["phases"].items()]
    return [(name, start, end) for (name, start), (_, end) in itertools.pairwise(marks)]


def len_or_count(value: Any) -> int:
    return value if isinstance(value, int) else len(value)


# --- the fence, step by step (in-process, on the full stack's PostgreSQL) -------------------------------

OWNER = Principal(user_id=7001, username="owner", token_id=None, expires_at=0)


async def _send(uow: UnitOfWork, channel_id: int, content: str) -> int:
    sent = await messages.send_message(uow, OWNER, messages.NewMessage(channel_id, content, None, content))
    return sent.row.id


async def _message_shards(database: Database, message_id: int, shards: tuple[int, int]) -> list[int]:
    found = []
    for shard in shards:
        async with database.shard_session(shard) as session:
            if await session.get(MessageRow, message_id) is not None:
                found.append(shard)
    return found


async def _switch_waiting_for_a_lock(database: Database, shard: int) -> None:
    """Until a session of the shard's database waits for a row lock with FOR UPDATE (the switch)."""
    waiting = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%'"
    )
    async with database.engine(database.location(shard).url).connect() as conn:
        for _ in range(300):
            if await conn.scalar(waiting):
                return
            await conn.rollback()
            await asyncio.sleep(0.1)
    raise AssertionError("the switch never waited for the writer")


async def test_a_writer_holding_the_tenant_delays_the_switch_and_is_copied(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_id, channel_id = await seeded_tenant(database, OWNER, 7, monkeypatch)
    inside, release = asyncio.Event(), asyncio.Event()

    async def slow_send() -> int:
        message_id = await _send(uow, channel_id, "in flight")  # holds FOR KEY SHARE on the server row
        inside.set()
        await release.wait()
        return message_id

    uow = UnitOfWork(database, InProcessBus())
    writer = asyncio.create_task(run_in_transaction(uow, slow_send, error_types()))
    await inside.wait()
    mover = TenantMover(Database(database.directory_url, database.shard_map), settle_seconds=0.1)
    moving = asyncio.create_task(mover.move(server_id, 41))
    await _switch_waiting_for_a_lock(database, 7)
    await asyncio.sleep(0.5)  # proves the switch stays blocked for a while: keep
    assert not moving.done(), "the switch must wait for the writer's transaction"
    release.set()
    message_id = await writer
    await uow.close()
    report = await moving
    await mover.database.dispose()
    assert report.caught_up >= 1  # committed after the bulk copy, synced under the lock
    assert await _message_shards(database, message_id, (7, 41)) == [41]


async def test_a_writer_that_located_the_old_copy_is_refused_there_and_retried(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_id, channel_id = await seeded_tenant(database, OWNER, 8, monkeypatch)
    uow = UnitOfWork(database, InProcessBus())
    assert await uow.shard_for(channel_id) == 8  # located before the move, remembered by this unit of work
    mover = TenantMover(Database(database.directory_url, database.shard_map), settle_seconds=0.1)
    journal, _ = await mover._begin(server_id, 42)
    plan = await mover._plan(8, 42)
    await mover._copy(plan, journal)
    report = MoveReport(server_id, 8, 42, resumed=False)
    await mover._switch(plan, journal, report)  # switched; the source copy is fenced, not yet deleted

    message_id = await run_in_transaction(uow, lambda: _send(uow, channel_id, "late"), error_types())
    await uow.close()
    assert shard_of(message_id) == 42  # retried on the new shard, so minted there
    assert await _message_shards(database, message_id, (8, 42)) == [42]
    await mover._finish(plan, journal)
    await mover.database.dispose()


async def test_one_mover_per_tenant_and_clear_refusals(
    full_stack: Stack, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_id, _ = await seeded_tenant(database, OWNER, 9, monkeypatch)
    first = TenantMover(Database(database.directory_url, database.shard_map), settle_seconds=1.0)
    moving = asyncio.create_task(first.move(server_id, 43))
    await asyncio.sleep(0.3)
    second = TenantMover(database, settle_seconds=0)
    with pytest.raises(MoveError, match=r"another `beep tenants move` of tenant \d+ is running"):
        await second.move(server_id, 44)
    assert (await moving).to_shard == 43
    await first.database.dispose()

    refused = await asyncio.create_subprocess_exec(
        *BEEP, "tenants", "move", "12345", "--to", "3", env=full_stack.env, stderr=asyncio.subprocess.PIPE
    )
    _, err = await refused.communicate()
    assert refused.returncode == 1 and "no tenant 12345" in err.decode()
