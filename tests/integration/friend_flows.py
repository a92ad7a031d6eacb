"""Friend requests, blocks and direct conversations as a client drives them, for the tests."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from db.base import ShardBase
from db.ids import shard_of
from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import Account, Users, _database

ERRORS = "... on UserError { code message field }"


OPEN = f"""mutation($u: ID!) {{ openDirectMessage(userId: $u) {{ __typename
  ... on DirectConversation {{ id server {{ id }} channel {{ id name }} user {{ id username }} }}
  {ERRORS} }} }}"""


async def _leftovers(
    stack: Stack, server_id: int, channel_id: int, conversations_table: str = "direct_conversations"
) -> dict[str, int]:
    """Rows anywhere that still belong to the conversation: every tenant table of its shard (by server or
    channel; the outbox, which is the event log, aside) and the directory tables that name it (the
    conversation's row in `conversations_table`)."""
    database = _database(stack)
    found: dict[str, int] = {}
    try:
        async with database.shard_session(shard_of(server_id)) as session:
            for table in ShardBase.metadata.sorted_tables:
                columns = table.c
                if "server_id" in columns:
                    where = columns.server_id == server_id
                elif "channel_id" in columns:
                    where = columns.channel_id == channel_id
                elif table.name == "servers":
                    where = columns.id == server_id
                else:
                    continue  # outbox tables
                count = await session.scalar(sa.select(sa.func.count()).select_from(table).where(where))
                found[f"shard.{table.name}"] = int(count or 0)
        async with database.directory_session() as directory:
            for name, column in (
                ("tenants", "id"),
                ("memberships", "server_id"),
                (conversations_table, "server_id"),
                ("relocations", "tenant_id"),
            ):
                count = await directory.scalar(
                    sa.text(f"SELECT count(*) FROM {name} WHERE {column} = :s"), {"s": server_id}
                )
                found[name] = int(count or 0)
    finally:
        await database.dispose()
    return found


async def open_dm(client: GraphQLClient, user_id: str) -> dict[str, Any]:
    return (await client.data(OPEN, {"u": user_id}))["openDirectMessage"]


SEND_REQUEST = f"""mutation($u: String!) {{ sendFriendRequest(username: $u) {{ __typename
  ... on FriendRequest {{ id direction user {{ id username }} }}
  ... on Friendship {{ user {{ id }} }} {ERRORS} }} }}"""


ACCEPT = f"""mutation($i: ID!) {{ acceptFriendRequest(id: $i) {{ __typename
  ... on Friendship {{ user {{ id }} }} {ERRORS} }} }}"""


DECLINE = f"""mutation($i: ID!) {{ declineFriendRequest(id: $i) {{ __typename
  ... on FriendRequestRemoved {{ requestId }} {ERRORS} }} }}"""


CANCEL = f"""mutation($i: ID!) {{ cancelFriendRequest(id: $i) {{ __typename
  ... on FriendRequestRemoved {{ requestId }} {ERRORS} }} }}"""


REMOVE = f"""mutation($u: ID!) {{ removeFriend(userId: $u) {{ __typename
  ... on FriendRemoved {{ userId }} {ERRORS} }} }}"""


BLOCK = f"""mutation($u: ID!) {{ blockUser(userId: $u) {{ __typename
  ... on BlockChange {{ userId blocked }} {ERRORS} }} }}"""


async def request(client: GraphQLClient, username: str) -> dict[str, Any]:
    return (await client.data(SEND_REQUEST, {"u": username}))["sendFriendRequest"]


async def befriend(
    stack: Stack, prefix: str = "f"
) -> tuple[tuple[Account, GraphQLClient], tuple[Account, GraphQLClient]]:
    """Two new users who are friends."""
    users = Users(stack)
    ann, as_ann = await users.new(f"{prefix}a")
    bob, as_bob = await users.new(f"{prefix}b")
    sent = await request(as_ann, bob.username)
    accepted = (await as_bob.data(ACCEPT, {"i": sent["id"]}))["acceptFriendRequest"]
    assert accepted == {"__typename": "Friendship", "user": {"id": ann.user_id}}, accepted
    return (ann, as_ann), (bob, as_bob)
