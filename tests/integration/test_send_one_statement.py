"""A send on PostgreSQL is one statement (messages/service.py `send_message_now`): the message and its
outbox row are written together, and only while what the send checked outside a transaction still holds
(kernel/tenancy/access_versions.py `unchanged_tenant`). Otherwise it writes nothing and the send runs in a
transaction instead, which decides as before.

Against the full stack's PostgreSQL: the statement itself, on a server of its own, with its access version
changed, its tenant marked as moved, and a nonce already taken; then through the API, a send that finds its
permissions changed since this process kept them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from db.engines import Database
from db.ids import new_id, shard_of
from subgraphs.kernel.events import outbox
from subgraphs.kernel.events.catalogue import decode, topic_for_channel
from subgraphs.kernel.tenancy import access_versions, tenant_tables
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.messages import repository, service
from subgraphs.messages.events import MessageCreated
from subgraphs.messages.models import MessageRow
from tests.harness.relayed import database_of
from tests.harness.scraped import scrape, total
from tests.harness.stack import Stack
from tests.integration.flows import SEND_MESSAGE
from tests.integration.message_flows import guild

SERVERS = tenant_tables.servers
OUTBOX = outbox.SHARD_TABLES.outbox
ROLES = "query($s: ID!) { server(id: $s) { roles { id isEveryone permissions } } }"
UPDATE_ROLE = "mutation($i: UpdateRoleInput!) { updateRole(input: $i) { __typename } }"
UPDATE_CHANNEL = "mutation($i: UpdateChannelInput!) { updateChannel(input: $i) { __typename } }"


@pytest.fixture
async def database(full_stack: Stack) -> AsyncIterator[Database]:
    db = database_of(full_stack)
    yield db
    await db.dispose()


async def version_of(db: Database, server_id: int) -> int:
    async with db.shard_session(shard_of(server_id)) as session:
        found = await session.scalar(
            sa.select(access_versions.ACCESS_VERSIONS.c.version).where(
                access_versions.ACCESS_VERSIONS.c.server_id == server_id
            )
        )
    return found or 0


def new_message(server_id: int, channel_id: int, author_id: int, nonce: str | None = None) -> MessageRow:
    return MessageRow(
        id=new_id(shard_of(channel_id)),
        channel_id=channel_id,
        server_id=server_id,
        author_id=author_id,
        content="one statement",
        mention_everyone=False,
        reply_to_id=None,
        nonce=nonce,
        created_at=datetime.now(UTC),
        suppress_embeds=False,
    )


async def checked(db: Database, message: MessageRow) -> access_versions.ChannelForSend:
    """What a send's checks find for the message's channel and author now (its version, placement, name)."""
    async with db.shard_reader(shard_of(message.channel_id)) as session:
        return await access_versions.channel_for_send(session, message.channel_id, message.author_id)


async def write(db: Database, message: MessageRow, target: access_versions.ChannelForSend) -> bool:
    (row,) = outbox.rows_for([(topic_for_channel(message.channel_id), service.created_event(message))])
    async with db.shard_reader(shard_of(message.channel_id)) as session:  # autocommit, as the send's
        return await repository.insert_announced_message(session, message, row, target)


async def stored(db: Database, message: MessageRow) -> tuple[bool, list[int]]:
    """Whether the message row exists, and the message ids of its channel's outbox events naming it."""
    async with db.shard_session(shard_of(message.channel_id)) as session:
        exists = await session.get(MessageRow, message.id) is not None
        payloads = await session.scalars(
            sa.select(OUTBOX.c.payload).where(OUTBOX.c.topic == topic_for_channel(message.channel_id))
        )
    events = [decode(p) for p in payloads]
    return exists, [
        e.message_id for e in events if isinstance(e, MessageCreated) and e.message_id == message.id
    ]


async def test_the_statement_writes_the_message_and_its_event_only_while_nothing_changed(
    full_stack: Stack, database: Database
) -> None:
    _owner, ((member, _client),), raw_server, raw_channel = await guild(full_stack, 1)
    server_id, channel_id, author = int(raw_server), int(raw_channel), int(member.user_id)
    version = await version_of(database, server_id)
    target = await checked(database, new_message(server_id, channel_id, author))
    assert target.version == version and target.placement is not None and target.name == "lobby"

    stale = new_message(server_id, channel_id, author)
    assert not await write(database, stale, replace(target, version=version ^ 1))  # access changed since
    assert await stored(database, stale) == (False, [])

    renamed = new_message(server_id, channel_id, author)
    assert not await write(database, renamed, replace(target, name="lobby-before"))  # renamed since
    assert await stored(database, renamed) == (False, [])

    elsewhere = new_message(server_id, channel_id, author)  # moved into (or out of) a folder since
    placed = replace(target, placement=replace(target.placement, parent_id=channel_id))
    assert not await write(database, elsewhere, placed)
    assert await stored(database, elsewhere) == (False, [])

    moved = new_message(server_id, channel_id, author)
    async with database.shard_session(shard_of(server_id)) as session:
        await session.execute(SERVERS.update().where(SERVERS.c.id == server_id).values(moved_to=63))
        await session.commit()
    try:
        assert not await write(database, moved, target)  # this copy is no longer the tenant's
    finally:
        async with database.shard_session(shard_of(server_id)) as session:
            await session.execute(SERVERS.update().where(SERVERS.c.id == server_id).values(moved_to=None))
            await session.commit()
    assert await stored(database, moved) == (False, [])

    first = new_message(server_id, channel_id, author, nonce="n-1")
    assert await write(database, first, target)
    assert await stored(database, first) == (True, [first.id])

    again = new_message(server_id, channel_id, author, nonce="n-1")  # the same nonce: the send's race
    with pytest.raises(IntegrityError):
        await write(database, again, target)
    assert await stored(database, again) == (False, [])


def messages_total(stack: Stack, name: str, **labels: str) -> float:
    """A metric summed over the stack's messages processes."""
    ports = [port for process, port in stack.subgraph_ports.items() if process.startswith("messages")]
    assert ports
    return sum(total(scrape(f"http://127.0.0.1:{port}/metrics")[1], name, **labels) for port in ports)


def one_statement_sends(stack: Stack) -> float:
    return messages_total(stack, "beep_message_sends_total", path="one_statement")


async def test_sends_through_the_api_are_one_statement_and_see_permission_changes(full_stack: Stack) -> None:
    """The messages process keeps the member's permissions from the first send; the owner then takes Send
    Messages from @everyone: the next send reads the new access version and is refused; given back, the
    member sends again. Both sends that went through were written by the one statement."""
    owner, ((_member, client),), server, channel = await guild(full_stack, 1)
    before = one_statement_sends(full_stack)
    sent = await client.data(SEND_MESSAGE, {"input": {"channelId": channel, "content": "allowed"}})
    assert sent["sendMessage"]["__typename"] == "Message", sent
    roles = (await owner.data(ROLES, {"s": server}))["server"]["roles"]
    everyone = next(r for r in roles if r["isEveryone"])
    permissions = int(everyone["permissions"]) & ~Permission.SEND_MESSAGES
    changed = await owner.data(UPDATE_ROLE, {"i": {"id": everyone["id"], "permissions": str(permissions)}})
    assert changed["updateRole"]["__typename"] == "Role", changed
    refused = await client.data(SEND_MESSAGE, {"input": {"channelId": channel, "content": "not any more"}})
    assert refused["sendMessage"]["__typename"] == "PermissionError", refused
    restored = await owner.data(
        UPDATE_ROLE, {"i": {"id": everyone["id"], "permissions": everyone["permissions"]}}
    )
    assert restored["updateRole"]["__typename"] == "Role", restored
    again = await client.data(SEND_MESSAGE, {"input": {"channelId": channel, "content": "allowed again"}})
    assert again["sendMessage"]["__typename"] == "Message", again
    assert one_statement_sends(full_stack) - before == 2


SEND_NAMED = """mutation($input: SendMessageInput!) {
  sendMessage(input: $input) {
    __typename ... on Message { id channel { id name } } ... on UserError { code }
  }
}"""


def kept_permission_uses(stack: Stack) -> float:
    return messages_total(stack, "beep_access_cache_lookups_total", result="hit")


async def test_a_send_uses_what_was_kept_and_shows_a_rename_at_once(full_stack: Stack) -> None:
    """After a member's first send to a channel, the next is checked against what the messages process
    kept, without reading the channel's access; its statement writes only while the channel still has
    the name (and placement) that was kept, so a rename in between shows in the very next answer."""
    owner, ((_member, client),), _server, channel = await guild(full_stack, 1)
    sends, uses = one_statement_sends(full_stack), kept_permission_uses(full_stack)
    for content in ("first", "second"):
        sent = await client.data(SEND_NAMED, {"input": {"channelId": channel, "content": content}})
        assert sent["sendMessage"]["channel"] == {"id": channel, "name": "lobby"}, sent
    assert kept_permission_uses(full_stack) - uses == 1  # the second send: the first kept nothing yet
    renamed = await owner.data(UPDATE_CHANNEL, {"i": {"id": channel, "name": "hall"}})
    assert renamed["updateChannel"]["__typename"] == "Channel", renamed
    sent = await client.data(SEND_NAMED, {"input": {"channelId": channel, "content": "third"}})
    assert sent["sendMessage"]["channel"] == {"id": channel, "name": "hall"}, sent
    assert one_statement_sends(full_stack) - sends == 3
