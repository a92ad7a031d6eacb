"""Client-side steps the tests compose: what a frontend would send."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest

from db.engines import Database
from subgraphs.channels import service as channels
from subgraphs.kernel.auth import Principal
from subgraphs.kernel.events.bus import InProcessBus
from subgraphs.kernel.settings import Settings
from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.tenancy.uow import UnitOfWork
from subgraphs.messages import service as messages
from subgraphs.servers import service as servers
from tests.harness.client import GraphQLClient, Operation, SubscriptionConnection
from tests.harness.relayed import wait_relayed
from tests.harness.stack import Stack, serving

SIGN_UP = """
mutation SignUp($input: SignUpInput!) {
  signUp(input: $input) {
    __typename
    ... on AuthPayload { accessToken refreshToken expiresIn user { id username email } }
    ... on UserError { code message field }
  }
}"""

SIGN_IN = """
mutation SignIn($input: SignInInput!) {
  signIn(input: $input) {
    __typename
    ... on AuthPayload { accessToken user { id username } }
    ... on UserError { code message field }
  }
}"""

CREATE_SERVER = """
mutation CreateServer($input: CreateServerInput!) {
  createServer(input: $input) {
    __typename
    ... on Server { id name visibility owner { id username } }
    ... on UserError { code message field }
  }
}"""

JOIN_SERVER = """
mutation Join($id: ID!) {
  joinServer(serverId: $id) { __typename ... on Server { id } ... on UserError { code message field } }
}"""

CREATE_CHANNEL = """
mutation CreateChannel($input: CreateChannelInput!) {
  createChannel(input: $input) {
    __typename
    ... on Channel { id name kind server { id name } }
    ... on UserError { code message field }
  }
}"""

SEND_MESSAGE = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) {
    __typename
    ... on Message { id content cursor author { id username } channel { id } }
    ... on UserError { code message field }
  }
}"""

MESSAGE_EVENTS = """
subscription Events($channelId: ID!) {
  messageEvents(channelId: $channelId) {
    __typename
    ... on MessageCreated { message { id content author { username } channel { id name } } }
    ... on MessageUpdated { message { id content editedAt } }
    ... on MessageDeleted { messageId channelId }
  }
}"""


@dataclass
class Account:
    token: str
    user_id: str
    username: str
    email: str
    password: str
    refresh_token: str = ""


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


async def sign_up(client: GraphQLClient, prefix: str = "user") -> Account:
    username = unique(prefix)
    email = f"{username}@example.test"
    password = f"pw-{secrets.token_hex(8)}"
    data = await client.with_token(None).data(
        SIGN_UP,
        {
            "input": {
                "firstName": "Test",
                "lastName": prefix.title(),
                "username": username,
                "email": email,
                "password": password,
            }
        },
    )
    payload = data["signUp"]
    assert payload["__typename"] == "AuthPayload", payload
    return Account(
        payload["accessToken"], payload["user"]["id"], username, email, password, payload["refreshToken"]
    )


async def create_server(
    client: GraphQLClient, name: str = "Guild", visibility: str = "PUBLIC"
) -> dict[str, Any]:
    data = await client.data(CREATE_SERVER, {"input": {"name": name, "visibility": visibility}})
    assert data["createServer"]["__typename"] == "Server", data
    return data["createServer"]


# What createServer makes besides the server: (name, kind), top level, in this order (servers/service.py).
DEFAULT_CHANNELS = [("general", "TEXT"), ("General", "VOICE")]
DEFAULT_CHANNEL_NAMES = [{"name": name} for name, _kind in DEFAULT_CHANNELS]


async def default_channel(client: GraphQLClient, server_id: str, kind: str = "TEXT") -> dict[str, Any]:
    """The channel of `kind` that a new server starts with."""
    data = await client.data(
        "query($s: ID!) { server(id: $s) { channels { id name kind position } } }", {"s": server_id}
    )
    return next(
        c for c in data["server"]["channels"] if c["kind"] == kind and (c["name"], kind) in DEFAULT_CHANNELS
    )


async def create_empty_server(
    client: GraphQLClient, name: str = "Guild", visibility: str = "PUBLIC"
) -> dict[str, Any]:
    """A server without its default channels, for tests of a channel layout built from nothing."""
    server = await create_server(client, name, visibility)
    for kind in ("TEXT", "VOICE"):
        channel = await default_channel(client, server["id"], kind)
        data = await client.data(
            "mutation($id: ID!) { deleteChannel(id: $id) { __typename } }", {"id": channel["id"]}
        )
        assert data["deleteChannel"]["__typename"] == "ChannelDeleted", data
    return server


async def create_channel(
    client: GraphQLClient, server_id: str, name: str = "general", **extra: Any
) -> dict[str, Any]:
    data = await client.data(CREATE_CHANNEL, {"input": {"serverId": server_id, "name": name, **extra}})
    assert data["createChannel"]["__typename"] == "Channel", data
    return data["createChannel"]


async def send(client: GraphQLClient, channel_id: str, content: str, **extra: Any) -> dict[str, Any]:
    data = await client.data(SEND_MESSAGE, {"input": {"channelId": channel_id, "content": content, **extra}})
    assert data["sendMessage"]["__typename"] == "Message", data
    return data["sendMessage"]


def outcome(payload: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """A mutation payload's type, error code and field (code and field are None on success)."""
    return payload["__typename"], payload.get("code"), payload.get("field")


def stream_error_code(message: dict[str, Any]) -> str:
    """The code of the error that ended a subscription (a `next` with errors, or an `error` message)."""
    errors = message["payload"].get("errors") if message["type"] == "next" else message["payload"]
    assert errors, message
    return str(errors[0]["extensions"]["code"])


async def subscribe_settled(
    connection: SubscriptionConnection, query: str, variables: dict[str, Any]
) -> Operation:
    """Subscribe once nothing of the test's set-up is still on its way, and return once the subscription
    is live (the router's live signal, docs/live-signal.md): an event published from then on reaches it.
    Set-up events are relayed after their mutations answer: the relay must have published them all
    first, or one could arrive as the stream's first event. A subscription refused at once is returned
    with its error left for `next`."""
    await wait_relayed(serving(connection.url))
    operation = await connection.subscribe(query, variables, live_signal=True)
    await operation.live()
    return operation


CHANNEL_FIELDS = """__typename ... on Channel { id name topic position permissionsSynced parent { name } }
  ... on UserError { code field }"""


UPDATE_CHANNEL = f"mutation($i: UpdateChannelInput!) {{ updateChannel(input: $i) {{ {CHANNEL_FIELDS} }} }}"


MOVE_CHANNEL = f"mutation($i: MoveChannelInput!) {{ moveChannel(input: $i) {{ {CHANNEL_FIELDS} }} }}"


DELETE_CHANNEL = """mutation($id: ID!) { deleteChannel(id: $id) {
  __typename ... on ChannelDeleted { channelId serverId childIds } ... on UserError { code field } } }"""


SET_VISIBILITY = f"""mutation($i: SetChannelVisibilityInput!) {{
  setChannelVisibility(input: $i) {{ {CHANNEL_FIELDS} }} }}"""


async def mutate(client: GraphQLClient, query: str, **input_: Any) -> dict[str, Any]:
    data = await client.data(query, {"i": input_})
    return next(iter(data.values()))


ERROR_FIELDS = "... on UserError { code message field }"


INVITE_FIELDS = "inviteCode createdAt expiresAt maxUses uses revoked valid server { id name } creator { id }"


CREATE_INVITE = f"""mutation($i: CreateInviteInput!) {{ createInvite(input: $i) {{
  __typename ... on Invite {{ {INVITE_FIELDS} }} {ERROR_FIELDS} }} }}"""


REVOKE_INVITE = f"""mutation($c: String!) {{ revokeInvite(code: $c) {{
  __typename ... on Invite {{ inviteCode revoked valid }} {ERROR_FIELDS} }} }}"""


ACCEPT_INVITE = f"""mutation($c: String!) {{ acceptInvite(code: $c) {{
  __typename ... on Server {{ id name viewerIsMember memberCount }} {ERROR_FIELDS} }} }}"""


LIST_INVITES = "query($s: ID!) { invites(serverId: $s) { inviteCode uses maxUses valid creator { id } } }"


MY_SERVERS = "{ myServers { id name } }"


DISCOVER = """query($q: String!, $n: Int, $after: String) {
  discoverServers(query: $q, first: $n, after: $after) {
    edges { cursor node { id name visibility memberCount viewerIsMember } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"""


CREATE_ROLE = f"""mutation($i: CreateRoleInput!) {{ createRole(input: $i) {{
  __typename ... on Role {{ id }} {ERROR_FIELDS} }} }}"""


ASSIGN_ROLE = "mutation($i: MemberRoleInput!) { assignRole(input: $i) { __typename } }"


class Users:
    """Signed-up accounts and a client for each."""

    def __init__(self, stack: Stack) -> None:
        self.anonymous = GraphQLClient(stack.router_url)

    async def new(self, prefix: str) -> tuple[Account, GraphQLClient]:
        account = await sign_up(self.anonymous, prefix)
        return account, self.anonymous.with_token(account.token)


async def invite(client: GraphQLClient, server_id: str, **limits: Any) -> dict[str, Any]:
    data = await client.data(CREATE_INVITE, {"i": {"serverId": server_id, **limits}})
    return data["createInvite"]


async def accept(client: GraphQLClient, code: str) -> dict[str, Any]:
    return (await client.data(ACCEPT_INVITE, {"c": code}))["acceptInvite"]


async def grant_role(owner: GraphQLClient, server_id: str, user_id: str, *permissions: Permission) -> str:
    bits = Permission(0)
    for p in permissions:
        bits |= p
    created = await owner.data(
        CREATE_ROLE, {"i": {"serverId": server_id, "name": "Role", "permissions": str(int(bits))}}
    )
    role_id = created["createRole"]["id"]
    assigned = await owner.data(ASSIGN_ROLE, {"i": {"roleId": role_id, "userId": user_id}})
    assert assigned["assignRole"]["__typename"] == "Role"
    return role_id


ERRORS = "... on UserError { code message field }"


KICK = f"""mutation($s: ID!, $u: ID!, $r: String) {{ kickMember(serverId: $s, userId: $u, reason: $r) {{
  __typename ... on MemberRemoved {{ serverId userId }} {ERRORS} }} }}"""


BAN = f"""mutation($s: ID!, $u: ID!, $r: String) {{ banMember(serverId: $s, userId: $u, reason: $r) {{
  __typename ... on Ban {{ reason user {{ id }} bannedBy {{ id }} createdAt }} {ERRORS} }} }}"""


UNBAN = f"""mutation($s: ID!, $u: ID!) {{ unbanMember(serverId: $s, userId: $u) {{
  __typename ... on BanLifted {{ serverId userId }} {ERRORS} }} }}"""


TIMEOUT = f"""mutation($s: ID!, $u: ID!, $until: DateTime, $seconds: Int) {{
  timeoutMember(serverId: $s, userId: $u, until: $until, seconds: $seconds) {{
  __typename ... on MemberTimeout {{ serverId userId until }} {ERRORS} }} }}"""


BANS = "query($s: ID!) { bans(serverId: $s) { user { id } reason bannedBy { id } createdAt } }"


DELETE = f"""mutation($s: ID!, $n: String!) {{ deleteServer(serverId: $s, confirmName: $n) {{
  __typename ... on ServerDeletion {{ serverId }} {ERRORS} }} }}"""


def _database(stack: Stack) -> Database:
    with mock.patch.dict(os.environ, stack.env, clear=True):
        settings = Settings()
    return Database(settings.resolved_directory_url, settings.shard_map)


async def _tenant(
    db: Database, owner: Principal, shard: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, int]:
    monkeypatch.setattr(servers, "choose_shard", lambda _n: shard)
    uow = UnitOfWork(db, InProcessBus())
    try:
        async with uow.atomic():
            server = await servers.create_server(uow, owner, servers.NewServer("Tenant", "PRIVATE", None), 64)
            channel = await channels.create_channel(
                uow, owner, channels.NewChannel(server.id, "c", "TEXT", None)
            )
        async with uow.atomic():
            for i in range(3):
                await messages.send_message(
                    uow, owner, messages.NewMessage(channel.id, f"{shard}:{i}", None, None)
                )
    finally:
        await uow.close()
    return server.id, channel.id
