"""A server's settings, its audit log, and its destruction: through the router, on both stacks."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

import subgraphs.channels.models
import subgraphs.kernel.tenancy.audit
import subgraphs.messages.models
import subgraphs.messages.search.models
import subgraphs.servers.models
import subgraphs.webhooks.models  # noqa: F401 - every shard table in ShardBase.metadata
from db.base import ShardBase
from db.ids import shard_of
from db.tenant_move.plan import IGNORED_TABLES
from subgraphs.kernel.tenancy.permissions import Permission
from tests.harness.stack import Stack
from tests.integration.flows import (
    DELETE,
    ERRORS,
    JOIN_SERVER,
    MESSAGE_EVENTS,
    Users,
    _database,
    accept,
    create_channel,
    create_server,
    grant_role,
    invite,
    outcome,
    send,
    subscribe_settled,
)

UPDATE = f"""mutation($i: UpdateServerInput!) {{ updateServer(input: $i) {{
  __typename ... on Server {{ id name description visibility }} {ERRORS} }} }}"""
AUDIT = """query($s: ID!, $first: Int, $before: ID, $action: AuditAction) {
  auditLog(serverId: $s, first: $first, before: $before, action: $action) {
    id action targetKind targetId reason context actor { id } changes { field before after } } }"""
SERVER = "query($s: ID!) { server(id: $s) { id name } }"
CHANNEL = "query($c: ID!) { channel(id: $c) { id } }"
MESSAGE = "query($m: ID!) { message(id: $m) { id } }"
MY_SERVERS = "{ myServers { id } }"
PREVIEW = "query($c: String!) { invite(code: $c) { valid serverName } }"
KICK = f"""mutation($s: ID!, $u: ID!) {{ kickMember(serverId: $s, userId: $u, reason: "spam") {{
  __typename {ERRORS} }} }}"""
CREATE_ROLE = f"""mutation($i: CreateRoleInput!) {{ createRole(input: $i) {{
  __typename ... on Role {{ id }} {ERRORS} }} }}"""
UPDATE_ROLE = f"""mutation($i: UpdateRoleInput!) {{ updateRole(input: $i) {{ __typename {ERRORS} }} }}"""


async def test_a_new_server_starts_with_a_text_and_a_voice_channel(stack: Stack) -> None:
    users = Users(stack)
    _owner, as_owner = await users.new("own")
    _member, as_member = await users.new("mem")
    # Given a server just created, with nothing else done
    server = await create_server(as_owner, "Fresh")
    layout = """query($s: ID!) { server(id: $s) {
      channels { id name kind position parent { id } server { id } } } }"""
    channels = (await as_owner.data(layout, {"s": server["id"]}))["server"]["channels"]
    # Then it has #general and a voice channel, at the top level, as Discord's do
    assert [(c["name"], c["kind"], c["position"], c["parent"]) for c in channels] == [
        ("general", "TEXT", 0, None),
        ("General", "VOICE", 1, None),
    ]
    assert {c["server"]["id"] for c in channels} == {server["id"]}
    # And someone who joins can see them and talk in #general at once
    joined = await as_member.data(JOIN_SERVER, {"id": server["id"]})
    assert joined["joinServer"]["__typename"] == "Server", joined
    assert (await as_member.data(layout, {"s": server["id"]}))["server"]["channels"] == channels
    sent = await send(as_member, channels[0]["id"], "first!")
    history = await as_owner.data(
        "query($c: ID!) { messages(channelId: $c) { edges { node { id content } } } }",
        {"c": channels[0]["id"]},
    )
    assert [e["node"] for e in history["messages"]["edges"]] == [{"id": sent["id"], "content": "first!"}]


async def test_update_server_checks_rules_and_rights(stack: Stack) -> None:
    users = Users(stack)
    _owner, as_owner = await users.new("own")
    _bob, as_bob = await users.new("bob")
    server = await create_server(as_owner, "Settings", "PUBLIC")
    await as_bob.data("mutation($s: ID!) { joinServer(serverId: $s) { __typename } }", {"s": server["id"]})

    async def update(client: Any, **fields: Any) -> dict[str, Any]:
        return (await client.data(UPDATE, {"i": {"serverId": server["id"], **fields}}))["updateServer"]

    assert outcome(await update(as_owner, name="x")) == ("ValidationError", "TOO_SHORT", "name")
    assert outcome(await update(as_owner, name="x" * 101)) == ("ValidationError", "TOO_LONG", "name")
    assert outcome(await update(as_owner, description="d" * 1001)) == (
        "ValidationError",
        "TOO_LONG",
        "description",
    )
    assert outcome(await update(as_bob, name="Mine now")) == ("PermissionError", "FORBIDDEN", "serverId")
    _eve, as_eve = await users.new("eve")
    assert outcome(await update(as_eve, name="Not mine")) == ("NotFoundError", "NOT_FOUND", "serverId")

    changed = await update(as_owner, name="Renamed", description="About us", visibility="PRIVATE")
    assert changed == {
        "__typename": "Server",
        "id": server["id"],
        "name": "Renamed",
        "description": "About us",
        "visibility": "PRIVATE",
    }
    assert (await as_eve.data(SERVER, {"s": server["id"]}))["server"] is None  # private now

    await grant_role(as_owner, server["id"], _bob.user_id, Permission.MANAGE_SERVER)
    assert (await update(as_bob, name="Managed"))["name"] == "Managed"


async def test_audit_log_records_who_changed_what(stack: Stack) -> None:
    users = Users(stack)
    owner, as_owner = await users.new("own")
    bob, as_bob = await users.new("bob")
    carol, as_carol = await users.new("car")
    server = await create_server(as_owner, "Audited", "PRIVATE")
    code = (await invite(as_owner, server["id"]))["inviteCode"]
    for client in (as_bob, as_carol):
        assert (await accept(client, code))["__typename"] == "Server"
    channel = await create_channel(as_owner, server["id"], "rules")
    role = (
        await as_owner.data(
            CREATE_ROLE, {"i": {"serverId": server["id"], "name": "Mods", "permissions": "8192"}}
        )
    )["createRole"]
    await as_owner.data(UPDATE_ROLE, {"i": {"id": role["id"], "name": "Moderators"}})
    await as_owner.data(UPDATE, {"i": {"serverId": server["id"], "description": "Read the rules"}})
    assert (await as_owner.data(KICK, {"s": server["id"], "u": carol.user_id}))["kickMember"][
        "__typename"
    ] == "MemberRemoved"

    # Only managers with View Audit Log read it: a plain member gets null, like a stranger.
    assert (await as_bob.data(AUDIT, {"s": server["id"]}))["auditLog"] is None
    entries = (await as_owner.data(AUDIT, {"s": server["id"]}))["auditLog"]
    actions = [e["action"] for e in entries]
    assert actions == [
        "MEMBER_KICK",
        "SERVER_UPDATE",
        "ROLE_UPDATE",
        "ROLE_CREATE",
        "CHANNEL_CREATE",
        "INVITE_CREATE",
    ]
    assert all(e["actor"] == {"id": owner.user_id} for e in entries)
    kick, update, rename, created, new_channel, new_invite = entries
    assert (kick["targetKind"], kick["targetId"], kick["reason"]) == ("MEMBER", carol.user_id, "spam")
    assert update["changes"] == [{"field": "description", "before": '""', "after": '"Read the rules"'}]
    assert rename["changes"] == [{"field": "name", "before": '"Mods"', "after": '"Moderators"'}]
    assert (rename["targetKind"], rename["targetId"]) == ("ROLE", role["id"])
    assert {c["field"]: json.loads(c["after"]) for c in created["changes"]} == {
        "name": "Mods",
        "permissions": "8192",
        "position": "1",
    }
    assert new_channel["targetId"] == channel["id"]
    assert json.loads(new_invite["context"]) == {"code": code}

    # Paging back and filtering.
    older = (await as_owner.data(AUDIT, {"s": server["id"], "first": 2, "before": rename["id"]}))["auditLog"]
    assert [e["action"] for e in older] == ["ROLE_CREATE", "CHANNEL_CREATE"]
    only_roles = (await as_owner.data(AUDIT, {"s": server["id"], "action": "ROLE_UPDATE"}))["auditLog"]
    assert [e["id"] for e in only_roles] == [rename["id"]]

    # A member given View Audit Log reads it too.
    await grant_role(as_owner, server["id"], bob.user_id, Permission.VIEW_AUDIT_LOG)
    assert (await as_bob.data(AUDIT, {"s": server["id"], "first": 1}))["auditLog"][0]["action"] == (
        "MEMBER_ROLE_ADD"
    )


async def _leftovers(stack: Stack, server_id: int, channel_ids: list[int]) -> dict[str, int]:
    """Rows anywhere that still belong to the server: every shard table (by server or channel) and the
    directory's tables that name it."""
    database = _database(stack)
    found: dict[str, int] = {}
    try:
        session = database.shard_session(shard_of(server_id))
        async with session:
            for table in ShardBase.metadata.sorted_tables:
                if table.name in IGNORED_TABLES:  # the shard's event log: pruned after its retention
                    continue
                columns = table.c
                if "server_id" in columns:
                    where = columns.server_id == server_id
                elif "channel_id" in columns:
                    where = columns.channel_id.in_(channel_ids)
                else:
                    where = columns.id == server_id
                count = await session.scalar(sa.select(sa.func.count()).select_from(table).where(where))
                found[f"shard.{table.name}"] = int(count or 0)
        async with database.directory_session() as directory:
            for name, column in (
                ("tenants", "id"),
                ("invites", "server_id"),
                ("memberships", "server_id"),
                ("server_invitations", "server_id"),
                ("relocations", "tenant_id"),
            ):
                count = await directory.scalar(
                    sa.text(f"SELECT count(*) FROM {name} WHERE {column} = :s"), {"s": server_id}
                )
                found[name] = int(count or 0)
    finally:
        await database.dispose()
    return found


async def test_destroying_a_server_leaves_nothing_behind_and_ends_live_streams(stack: Stack) -> None:
    users = Users(stack)
    _owner, as_owner = await users.new("own")
    bob, as_bob = await users.new("bob")
    server = await create_server(as_owner, "Doomed", "PRIVATE")
    code = (await invite(as_owner, server["id"]))["inviteCode"]
    assert (await accept(as_bob, code))["__typename"] == "Server"
    folder = await create_channel(as_owner, server["id"], "folder", kind="FOLDER")
    general = await create_channel(as_owner, server["id"], "general", parentId=folder["id"])
    message = await send(as_bob, general["id"], "last words")
    await grant_role(as_owner, server["id"], bob.user_id, Permission.MANAGE_MESSAGES)
    channel_ids = [int(folder["id"]), int(general["id"])]
    before = await _leftovers(stack, int(server["id"]), channel_ids)
    assert before["shard.messages"] == 1 and before["memberships"] == 2 and before["invites"] == 1

    async with as_bob.subscriptions() as connection:
        stream = await subscribe_settled(connection, MESSAGE_EVENTS, {"channelId": general["id"]})
        await send(as_owner, general["id"], "hello")
        assert (await stream.next())["payload"]["data"]["messageEvents"]["__typename"] == "MessageCreated"

        refused = (await as_bob.data(DELETE, {"s": server["id"], "n": "Doomed"}))["deleteServer"]
        assert outcome(refused) == ("PermissionError", "FORBIDDEN", "serverId")
        mistyped = (await as_owner.data(DELETE, {"s": server["id"], "n": "doomed"}))["deleteServer"]
        assert outcome(mistyped) == ("ValidationError", "CONFIRMATION_MISMATCH", "confirmName")
        deleted = (await as_owner.data(DELETE, {"s": server["id"], "n": "Doomed"}))["deleteServer"]
        assert deleted == {"__typename": "ServerDeletion", "serverId": server["id"]}

        ended = await stream.next()
        errors = ended["payload"] if ended["type"] == "error" else ended["payload"].get("errors")
        assert errors and errors[0]["extensions"]["code"] == "NOT_FOUND", ended

    for client in (as_owner, as_bob):
        assert (await client.data(SERVER, {"s": server["id"]}))["server"] is None
        assert server["id"] not in [s["id"] for s in (await client.data(MY_SERVERS))["myServers"]]
        assert (await client.data(CHANNEL, {"c": general["id"]}))["channel"] is None
        assert (await client.data(MESSAGE, {"m": message["id"]}))["message"] is None
    assert (await as_bob.data(PREVIEW, {"c": code}))["invite"] is None
    again = (await as_owner.data(DELETE, {"s": server["id"], "n": "Doomed"}))["deleteServer"]
    assert outcome(again) == ("NotFoundError", "NOT_FOUND", "serverId")

    after = await _leftovers(stack, int(server["id"]), channel_ids)
    assert after == dict.fromkeys(after, 0), after
    assert set(after) >= {"shard.servers", "shard.channels", "shard.messages", "shard.audit_log"}
