"""The permission matrix: every permission the API enforces, on each resource it governs, allowed and
denied — granted by a role, missing, taken away by a channel overwrite (@everyone, role, member: Discord's
order), given back by a later one ("member allow beats role deny"), inherited from a folder — plus
ADMINISTRATOR and the owner, who bypass all of it. Through the router, on both stacks.

One private server per stack, set up once for the module. Its @everyone role has no permission at all, so
every grant in a case comes from the roles the case names. A case builds its own channel (or folder and
channel), so no case sees another's overwrites, and deletes it afterwards.

Voice permissions are exercised in VOICE channels with real aiortc offers (tests/harness/voice_peers.py):
every call joined is left, and its peer closed, whatever the case's outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from subgraphs.kernel.tenancy.permissions import ALL_PERMISSIONS, Permission
from tests.harness.client import GraphQLClient
from tests.harness.preview_site import serve_preview_site
from tests.harness.stack import Stack
from tests.harness.voice_api import LEAVE as LEAVE_VOICE
from tests.harness.voice_peers import VoicePeer
from tests.integration.attachment_flows import File, send_files, upload_first
from tests.integration.flows import (
    BAN,
    BANS,
    CREATE_INVITE,
    DELETE_CHANNEL,
    KICK,
    LIST_INVITES,
    MESSAGE_EVENTS,
    MOVE_CHANNEL,
    REVOKE_INVITE,
    SEND_MESSAGE,
    SIGN_IN,
    TIMEOUT,
    UNBAN,
    UPDATE_CHANNEL,
    Account,
    accept,
    create_channel,
    invite,
    mutate,
    send,
    sign_up,
    stream_error_code,
    subscribe_settled,
)
from tests.integration.message_flows import ADD as ADD_REACTION
from tests.integration.message_flows import PIN
from tests.integration.role_flows import (
    ASSIGN_ROLE,
    CREATE_ROLE,
    DELETE_ROLE,
    UPDATE_ROLE,
    bits,
    overwrite,
    role,
)

ALLOWED = "allowed"
ERRORS = "... on UserError { code message field }"
MY_PERMISSIONS = (
    """query($s: ID!, $c: ID!) { server(id: $s) { myPermissions } channel(id: $c) { myPermissions } }"""
)
CREATE_CHANNEL = """mutation($i: CreateChannelInput!) { createChannel(input: $i) {
  __typename ... on Channel { id } ... on UserError { code } } }"""
SERVER_PERMISSIONS = "query($s: ID!) { server(id: $s) { myPermissions } }"
READ = Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY
PARTICIPANTS = "... on VoiceChannelState { participants { userId serverMute } }"
MUTE_MEMBER = f"""mutation($c: ID!, $u: ID!) {{ muteVoiceMember(input: {{channelId: $c, userId: $u,
  muted: true}}) {{ __typename {PARTICIPANTS} {ERRORS} }} }}"""
PREVIEW_EVENTS = """subscription($c: ID!) { messageEvents(channelId: $c) { __typename
  ... on MessageLinkPreviewsUpdated { messageId linkPreviews { url } } } }"""
JOIN_VOICE = f"""mutation($i: JoinVoiceInput!) {{ joinVoice(input: $i) {{ __typename
  ... on VoiceSession {{ participants {{ userId suppressed camera }} }} {ERRORS} }} }}"""
DISCONNECT_MEMBER = f"""mutation($c: ID!, $u: ID!) {{ disconnectVoiceMember(channelId: $c, userId: $u) {{
  __typename {PARTICIPANTS} {ERRORS} }} }}"""

# Permissions no operation checks: no operation of this matrix can exercise them. They are still computed
# like every other bit (roles, overwrites, folders, administrator, owner), and `myPermissions` reports
# them: that is asserted for each of them below (test_ungoverned_permissions_are_reported), never skipped.
UNGOVERNED: dict[Permission, str] = {
    Permission.CHANGE_NICKNAME: "no operation yet (no nicknames)",
    Permission.MANAGE_NICKNAMES: "no operation yet (no nicknames)",
}


# --- the world: one server per stack -----------------------------------------------------------------


@dataclass
class Member:
    account: Account
    client: GraphQLClient
    role_id: str | None  # the one role that gives this member its permissions (None: the owner)
    signed_in_at: float = field(default_factory=time.monotonic)

    @property
    def user_id(self) -> str:
        return self.account.user_id


@dataclass
class Resource:
    """What a case acts on: a channel (top level or in a folder), or just the server."""

    server_id: str
    channel_id: str = ""
    folder_id: str | None = None


@dataclass
class World:
    stack: Stack
    anonymous: GraphQLClient
    owner: Member
    server_id: str
    code: str  # an unlimited invite to the (private) server
    dummy_role: str  # a role nobody holds, for overwrites that only unsync a channel
    site: str = ""  # the origin of a local site with a previewable page (tests/harness/preview_site.py)
    _roles: dict[int, str] = field(default_factory=dict)
    _members: dict[int, Member] = field(default_factory=dict)
    _builders: list[Member] = field(default_factory=list)
    _built: int = 0

    async def create(self, name: str, **extra: Any) -> dict[str, Any]:
        """A channel, made by an administrator: a fresh one every 100 channels, as creating channels is
        rate-limited per user (120 per 10 minutes)."""
        if not self._builders or self._built >= 100:
            builder = await self.newcomer("bld")
            admins = await self.role_with(Permission.ADMINISTRATOR)
            assigned = await role(self.owner.client, ASSIGN_ROLE, roleId=admins, userId=builder.user_id)
            assert assigned["__typename"] == "Role", assigned
            self._builders.append(builder)
            self._built = 0
        self._built += 1
        return await create_channel(self._builders[-1].client, self.server_id, name, **extra)

    async def sign_in_again(self) -> None:
        """Access tokens live 15 minutes and a stack's share of this module can take longer: whoever signed
        in more than 10 minutes ago signs in again."""
        for member in [self.owner, *self._members.values(), *self._builders]:
            if time.monotonic() - member.signed_in_at > 600:
                credentials = {"email": member.account.email, "password": member.account.password}
                data = await self.anonymous.data(SIGN_IN, {"input": credentials})
                member.account.token = data["signIn"]["accessToken"]
                member.client = self.anonymous.with_token(member.account.token)
                member.signed_in_at = time.monotonic()

    async def role_with(self, permissions: Permission) -> str:
        if int(permissions) not in self._roles:
            created = await role(
                self.owner.client,
                CREATE_ROLE,
                serverId=self.server_id,
                name=f"bits {int(permissions)}",
                permissions=bits(permissions),
            )
            assert created["__typename"] == "Role", created
            self._roles[int(permissions)] = created["id"]
        return self._roles[int(permissions)]

    async def newcomer(self, prefix: str) -> Member:
        """A fresh member with @everyone only (which grants nothing here)."""
        account = await sign_up(self.anonymous, prefix)
        client = self.anonymous.with_token(account.token)
        assert (await accept(client, self.code))["__typename"] == "Server"
        return Member(account, client, None)

    async def member_with(self, permissions: Permission) -> Member:
        """A member (reused across cases) whose one role grants exactly `permissions`."""
        if int(permissions) not in self._members:
            found = await self.newcomer("subj")
            found.role_id = await self.role_with(permissions)
            assigned = await role(self.owner.client, ASSIGN_ROLE, roleId=found.role_id, userId=found.user_id)
            assert assigned["__typename"] == "Role", assigned
            self._members[int(permissions)] = found
        return self._members[int(permissions)]

    async def delete(self, channel_id: str) -> None:
        await self.owner.client.data(DELETE_CHANNEL, {"id": channel_id})


async def start_world(stack: Stack) -> World:
    anonymous = GraphQLClient(stack.router_url)
    account = await sign_up(anonymous, "own")
    owner = Member(account, anonymous.with_token(account.token), None)
    created = await owner.client.data(
        "mutation($i: CreateServerInput!) { createServer(input: $i) { ... on Server { id } } }",
        {"i": {"name": "Matrix", "visibility": "PRIVATE"}},
    )
    server_id = created["createServer"]["id"]
    nothing = await role(owner.client, UPDATE_ROLE, id=server_id, permissions="0")  # @everyone
    assert nothing["__typename"] == "Role", nothing
    code = (await invite(owner.client, server_id, maxAgeSeconds=0))["inviteCode"]
    dummy = await role(owner.client, CREATE_ROLE, serverId=server_id, name="Nobody")
    return World(stack, anonymous, owner, server_id, code, dummy["id"])


@pytest.fixture(scope="module")
async def world(stack: Stack) -> AsyncIterator[World]:
    with serve_preview_site() as origin:
        found = await start_world(stack)
        found.site = origin
        yield found


@pytest.fixture(autouse=True)
async def signed_in(world: World) -> None:
    await world.sign_in_again()


# --- scenarios: who acts, and which overwrites stand between them and the permission -----------------


@dataclass(frozen=True)
class Scenario:
    name: str
    subject: str  # granted: a role gives the permission; ungranted: it does not; admin; owner
    allowed: bool
    channel: tuple[tuple[str, str], ...] = ()  # overwrites on the channel: (everyone|role|member, allow|deny)
    folder: tuple[tuple[str, str], ...] = ()  # overwrites on its folder
    placement: str = "top"  # top: no folder; synced: in the folder, synced; own: in it, own overwrites


CHANNEL_SCENARIOS = (
    Scenario("role grants", "granted", True),
    Scenario("not granted", "ungranted", False),
    Scenario("@everyone overwrite denies", "granted", False, (("everyone", "deny"),)),
    Scenario("role overwrite denies", "granted", False, (("role", "deny"),)),
    Scenario("member overwrite denies", "granted", False, (("member", "deny"),)),
    Scenario(
        "role overwrite allows over @everyone deny",
        "ungranted",
        True,
        (("everyone", "deny"), ("role", "allow")),
    ),
    Scenario("member overwrite allows", "ungranted", True, (("member", "allow"),)),
    Scenario("member allow beats role deny", "granted", True, (("role", "deny"), ("member", "allow"))),
    Scenario("member deny beats role allow", "ungranted", False, (("role", "allow"), ("member", "deny"))),
    Scenario(
        "folder denies, channel synced", "granted", False, folder=(("role", "deny"),), placement="synced"
    ),
    Scenario(
        "folder allows, channel synced", "ungranted", True, folder=(("role", "allow"),), placement="synced"
    ),
    Scenario(
        "folder denies, channel has its own", "granted", True, folder=(("role", "deny"),), placement="own"
    ),
    Scenario(
        "administrator ignores overwrites",
        "admin",
        True,
        (("everyone", "deny"), ("role", "deny"), ("member", "deny")),
    ),
    Scenario("owner ignores overwrites", "owner", True, (("everyone", "deny"), ("member", "deny"))),
)
SERVER_SCENARIOS = (
    Scenario("role grants", "granted", True),
    Scenario("not granted", "ungranted", False),
    Scenario("administrator", "admin", True),
    Scenario("owner", "owner", True),
)


async def subject_for(world: World, scenario: Scenario, permission: Permission, needs: Permission) -> Member:
    if scenario.subject == "owner":
        return world.owner
    if scenario.subject == "admin":
        return await world.member_with(Permission.ADMINISTRATOR)
    granted = permission if scenario.subject == "granted" else Permission(0)
    return await world.member_with(needs | granted)


async def put_overwrites(
    world: World, channel_id: str, subject: Member, rules: tuple[tuple[str, str], ...], value: Permission
) -> None:
    for target, kind in rules:
        target_kind, target_id = {
            "everyone": ("ROLE", world.server_id),
            "role": ("ROLE", subject.role_id),
            "member": ("MEMBER", subject.user_id),
        }[target]
        put = await overwrite(
            world.owner.client, channel_id, target_kind, str(target_id), **{kind: bits(value)}
        )
        assert put["__typename"] == "Channel", put


async def arrange(
    world: World, scenario: Scenario, subject: Member, permission: Permission, kind: str
) -> Resource:
    """The channel of a case (made by a builder), with the scenario's overwrites (set by the owner)."""
    if scenario.placement == "top":
        channel = await world.create("case", kind=kind)
        await put_overwrites(world, channel["id"], subject, scenario.channel, permission)
        return Resource(world.server_id, channel["id"])
    folder = await world.create("folder", kind="FOLDER")
    channel = await world.create("case", kind=kind, parentId=folder["id"])
    if scenario.placement == "own":  # its own (empty) overwrite, set while the folder has none to copy
        own = await overwrite(world.owner.client, channel["id"], "ROLE", world.dummy_role)
        assert own["permissionsSynced"] is False, own
    await put_overwrites(world, folder["id"], subject, scenario.folder, permission)
    return Resource(world.server_id, channel["id"], folder["id"])


async def reported(subject: Member, resource: Resource) -> tuple[Permission, Permission]:
    """What `Server.myPermissions` and `Channel.myPermissions` say (0 for a channel it cannot see)."""
    if not resource.channel_id:
        data = await subject.client.data(SERVER_PERMISSIONS, {"s": resource.server_id})
        return Permission(int(data["server"]["myPermissions"])), Permission(0)
    data = await subject.client.data(MY_PERMISSIONS, {"s": resource.server_id, "c": resource.channel_id})
    channel = data["channel"]
    return Permission(int(data["server"]["myPermissions"])), Permission(
        int(channel["myPermissions"]) if channel else 0
    )


# --- the operations, and what success and denial look like -------------------------------------------

Attempt = Callable[[World, Member, Resource], Awaitable[str]]


def both(*outcomes: str) -> str:
    """Two operations under one permission: ALLOWED when both were, else each outcome."""
    return ALLOWED if set(outcomes) == {ALLOWED} else "+".join(outcomes)


def seen(value: Any, expected: Any) -> str:
    """ALLOWED when a query answered what was asked; otherwise its answer ("null" when it hid it)."""
    return ALLOWED if value == expected else json.dumps(value)


def typename(result: dict[str, Any], success: str) -> str:
    """ALLOWED for the success type; otherwise the error type and code (so a wrong error fails the case)."""
    if result["__typename"] == success:
        return ALLOWED
    return f"{result['__typename']}:{result.get('code')}"


async def view_channel(world: World, subject: Member, resource: Resource) -> str:
    data = await subject.client.data("query($c: ID!) { channel(id: $c) { id } }", {"c": resource.channel_id})
    return seen(data["channel"], {"id": resource.channel_id})


async def listed_in_server_channels(world: World, subject: Member, resource: Resource) -> str:
    data = await subject.client.data(
        "query($s: ID!) { server(id: $s) { channels { id } } }", {"s": resource.server_id}
    )
    return ALLOWED if {"id": resource.channel_id} in data["server"]["channels"] else "absent"


async def message_channel_reference(world: World, subject: Member, resource: Resource) -> str:
    """Message.channel: the router resolves the channel through the channels subgraph's _entities."""
    sent = await send(world.owner.client, resource.channel_id, "referenced")
    data = await subject.client.data(
        "query($m: ID!) { message(id: $m) { id channel { id } } }", {"m": sent["id"]}
    )
    return seen(data["message"], {"id": sent["id"], "channel": {"id": resource.channel_id}})


async def subgraph_entities(world: World, subject: Member, resource: Resource) -> str:
    """The channels subgraph's own entity resolver (what the router calls), asked directly."""
    body = await entities(world, subject, "channels", "Channel", resource.channel_id)
    assert "errors" not in body, body
    return seen(body["data"]["_entities"][0], {"id": resource.channel_id})


async def entities(world: World, subject: Member, subgraph: str, typename_: str, id_: str) -> dict[str, Any]:
    query = f"query($r: [_Any!]!) {{ _entities(representations: $r) {{ ... on {typename_} {{ id }} }} }}"
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            world.stack.subgraph_urls[subgraph],
            json={"query": query, "variables": {"r": [{"__typename": typename_, "id": id_}]}},
            headers={"authorization": f"Bearer {subject.account.token}", **world.stack.internal_headers},
        )
    return dict(response.json())


async def subscribe_to_events(world: World, subject: Member, resource: Resource) -> str:
    """messageEvents: the first event arrives, or the stream ends with an error code."""
    async with subject.client.subscriptions() as connection:
        events = await subscribe_settled(connection, MESSAGE_EVENTS, {"channelId": resource.channel_id})
        try:
            first = await events.next(timeout=0.7)  # a refusal comes at once
        except TimeoutError:
            await send(world.owner.client, resource.channel_id, "live")
            first = await events.next(timeout=15)
        if first["type"] == "next" and first["payload"].get("data"):
            content = first["payload"]["data"]["messageEvents"]["message"]["content"]
            return ALLOWED if content == "live" else json.dumps(first)
        return stream_error_code(first)


async def send_message(world: World, subject: Member, resource: Resource) -> str:
    data = await subject.client.data(
        SEND_MESSAGE, {"input": {"channelId": resource.channel_id, "content": "hi"}}
    )
    return typename(data["sendMessage"], "Message")


async def read_history(world: World, subject: Member, resource: Resource) -> str:
    await send(world.owner.client, resource.channel_id, "history")
    data = await subject.client.data(
        "query($c: ID!) { messages(channelId: $c) { edges { node { content } } } }",
        {"c": resource.channel_id},
    )
    return seen(data["messages"], {"edges": [{"node": {"content": "history"}}]})


async def read_one_message(world: World, subject: Member, resource: Resource) -> str:
    sent = await send(world.owner.client, resource.channel_id, "old news")
    data = await subject.client.data("query($m: ID!) { message(id: $m) { content } }", {"m": sent["id"]})
    return seen(data["message"], {"content": "old news"})


async def delete_others_message(world: World, subject: Member, resource: Resource) -> str:
    sent = await send(world.owner.client, resource.channel_id, "delete me")
    data = await subject.client.data(
        "mutation($id: ID!) { deleteMessage(id: $id) { __typename ... on UserError { code } } }",
        {"id": sent["id"]},
    )
    return typename(data["deleteMessage"], "MessageDeleted")


async def rename_channel(world: World, subject: Member, resource: Resource) -> str:
    return typename(
        await mutate(subject.client, UPDATE_CHANNEL, id=resource.channel_id, name="renamed"), "Channel"
    )


async def reorder_channel(world: World, subject: Member, resource: Resource) -> str:
    result = await mutate(
        subject.client, MOVE_CHANNEL, id=resource.channel_id, parentId=resource.folder_id, position=0
    )
    return typename(result, "Channel")


async def delete_channel(world: World, subject: Member, resource: Resource) -> str:
    data = await subject.client.data(DELETE_CHANNEL, {"id": resource.channel_id})
    return typename(data["deleteChannel"], "ChannelDeleted")


async def create_in_folder(world: World, subject: Member, resource: Resource) -> str:
    return await create_as(world, subject, resource.server_id, resource.channel_id)


async def set_channel_overwrite(world: World, subject: Member, resource: Resource) -> str:
    result = await overwrite(
        subject.client, resource.channel_id, "ROLE", world.dummy_role, deny=bits(Permission.VIEW_CHANNEL)
    )
    return typename(result, "Channel")


async def list_webhooks(world: World, subject: Member, resource: Resource) -> str:
    data = await subject.client.data(
        "query($c: ID!) { webhooks(channelId: $c) { id } }", {"c": resource.channel_id}
    )
    return seen(data["webhooks"], [])


async def create_top_level_channel(world: World, subject: Member, resource: Resource) -> str:
    return await create_as(world, subject, resource.server_id, None)


async def create_as(world: World, subject: Member, server_id: str, parent_id: str | None) -> str:
    result = await mutate(subject.client, CREATE_CHANNEL, serverId=server_id, name="made", parentId=parent_id)
    if result["__typename"] == "Channel" and parent_id is None:
        await world.delete(result["id"])  # (one in a folder goes with the folder)
    return typename(result, "Channel")


async def create_and_delete_role(world: World, subject: Member, resource: Resource) -> str:
    created = await role(subject.client, CREATE_ROLE, serverId=resource.server_id, name="made")
    if created["__typename"] != "Role":
        return typename(created, "Role")
    deleted = (await subject.client.data(DELETE_ROLE, {"id": created["id"]}))["deleteRole"]
    return typename(deleted, "Role")


async def manage_invites(world: World, subject: Member, resource: Resource) -> str:
    """Listing the server's invites and revoking someone else's: both or neither."""
    code = (await invite(world.owner.client, resource.server_id))["inviteCode"]
    listed = (await subject.client.data(LIST_INVITES, {"s": resource.server_id}))["invites"]
    revoked = (await subject.client.data(REVOKE_INVITE, {"c": code}))["revokeInvite"]
    return both(
        ALLOWED if listed is not None and code in {i["inviteCode"] for i in listed} else json.dumps(listed),
        typename(revoked, "Invite"),
    )


async def read_audit_log(world: World, subject: Member, resource: Resource) -> str:
    data = await subject.client.data(
        "query($s: ID!) { auditLog(serverId: $s, first: 1) { action } }", {"s": resource.server_id}
    )
    return ALLOWED if data["auditLog"] else json.dumps(data["auditLog"])


async def update_server(world: World, subject: Member, resource: Resource) -> str:
    data = await subject.client.data(
        f"""mutation($s: ID!, $d: String!) {{ updateServer(input: {{serverId: $s, description: $d}}) {{
          __typename {ERRORS} }} }}""",
        {"s": resource.server_id, "d": f"described by {subject.account.username}"},
    )
    return typename(data["updateServer"], "Server")


async def create_invite(world: World, subject: Member, resource: Resource) -> str:
    data = await subject.client.data(CREATE_INVITE, {"i": {"serverId": resource.server_id}})
    return typename(data["createInvite"], "Invite")


def on_newcomer(query: str, success: str, **extra: Any) -> Attempt:
    """A moderation mutation aimed at a fresh member (whose highest role is @everyone: below everyone)."""

    async def attempt(world: World, subject: Member, resource: Resource) -> str:
        target = await world.newcomer("tgt")
        data = await subject.client.data(query, {"s": resource.server_id, "u": target.user_id, **extra})
        return typename(next(iter(data.values())), success)

    return attempt


async def add_reaction(world: World, subject: Member, resource: Resource) -> str:
    sent = await send(world.owner.client, resource.channel_id, "react to me")
    data = await subject.client.data(ADD_REACTION, {"m": sent["id"], "e": "👍"})
    return typename(data["addReaction"], "Message")


async def pin_message(world: World, subject: Member, resource: Resource) -> str:
    sent = await send(world.owner.client, resource.channel_id, "pin me")
    data = await subject.client.data(PIN, {"m": sent["id"]})
    return typename(data["pinMessage"], "Message")


async def mention_everyone(world: World, subject: Member, resource: Resource) -> str:
    """The message is sent either way; only with the permission does its @everyone mention anyone."""
    data = await subject.client.data(
        f"""mutation($i: SendMessageInput!) {{ sendMessage(input: $i) {{ __typename
          ... on Message {{ mentionsEveryone }} {ERRORS} }} }}""",
        {"i": {"channelId": resource.channel_id, "content": "@everyone look"}},
    )
    sent = data["sendMessage"]
    if sent["__typename"] != "Message":
        return typename(sent, "Message")
    return ALLOWED if sent["mentionsEveryone"] is True else "not mentioning"


async def embed_links(world: World, subject: Member, resource: Resource) -> str:
    """The worker previews a link after the send, for an author with Embed Links. The owner's link, sent
    next, is previewed in any case: once its preview is out (and a moment more, as the consumer handles
    one batch of messages together), the subject's message has its preview or never will."""
    link = f"{world.site}/page"
    async with world.owner.client.subscriptions() as connection:
        events = await subscribe_settled(connection, PREVIEW_EVENTS, {"c": resource.channel_id})
        mine = await send(subject.client, resource.channel_id, f"see {link}")
        marker = await send(world.owner.client, resource.channel_id, f"and {link}")
        previewed: set[str] = set()
        while marker["id"] not in previewed:
            event = (await events.next(timeout=20))["payload"]["data"]["messageEvents"]
            if event["__typename"] == "MessageLinkPreviewsUpdated" and event["linkPreviews"]:
                previewed.add(event["messageId"])
    if mine["id"] not in previewed:
        await asyncio.sleep(1)
    data = await world.owner.client.data(  # (the subject may not read history)
        "query($m: ID!) { message(id: $m) { linkPreviews { url } } }", {"m": mine["id"]}
    )
    return ALLOWED if data["message"]["linkPreviews"] == [{"url": link}] else "no preview"


async def attach_files(world: World, subject: Member, resource: Resource) -> str:
    """uploadAttachment, and sendMessage with a file: both or neither."""
    note: File = ("note.txt", b"a note", "text/plain")
    token = subject.account.token
    uploaded = await upload_first(world.stack, token, resource.channel_id, note)
    sent = await send_files(world.stack, token, resource.channel_id, [note], content="with a file")
    return both(typename(uploaded, "Attachment"), typename(sent, "Message"))


@contextlib.asynccontextmanager
async def in_call(subject: Member, channel_id: str, *, camera: bool = False) -> AsyncIterator[dict[str, Any]]:
    """joinVoice with a real offer (a microphone, and a camera if asked); the call is left and the peer
    closed afterwards, whatever happened."""
    peer = VoicePeer(440.0, camera=camera)
    try:
        offer = await peer.offer()
        data = await subject.client.data(JOIN_VOICE, {"i": {"channelId": channel_id, "offer": offer}})
        yield data["joinVoice"]
    finally:
        await peer.close()
        await subject.client.execute(LEAVE_VOICE)


def own_state(session: dict[str, Any], subject: Member) -> dict[str, Any]:
    return next(p for p in session["participants"] if p["userId"] == subject.user_id)


async def join_voice(world: World, subject: Member, resource: Resource) -> str:
    async with in_call(subject, resource.channel_id) as session:
        if session["__typename"] == "VoiceSession":
            assert own_state(session, subject)["camera"] is False, session
        return typename(session, "VoiceSession")


async def speak(world: World, subject: Member, resource: Resource) -> str:
    """In the call either way; without Speak, suppressed (the SFU forwards none of their audio)."""
    async with in_call(subject, resource.channel_id) as session:
        if session["__typename"] != "VoiceSession":
            return typename(session, "VoiceSession")
        return "suppressed" if own_state(session, subject)["suppressed"] else ALLOWED


async def stream_camera(world: World, subject: Member, resource: Resource) -> str:
    async with in_call(subject, resource.channel_id, camera=True) as session:
        if session["__typename"] == "VoiceSession":
            assert own_state(session, subject)["camera"] is True, session
        return typename(session, "VoiceSession")


def on_participant(query: str, field_: str, **extra: Any) -> Attempt:
    """A voice moderation mutation aimed at a member in the case's call (one who may connect)."""

    async def attempt(world: World, subject: Member, resource: Resource) -> str:
        target = await world.member_with(Permission.VIEW_CHANNEL | Permission.CONNECT)
        async with in_call(target, resource.channel_id) as session:
            assert session["__typename"] == "VoiceSession", session
            data = await subject.client.data(query, {"c": resource.channel_id, "u": target.user_id, **extra})
            result = data[field_]
            if result["__typename"] != "VoiceChannelState":
                return typename(result, "VoiceChannelState")
            states = {p["userId"]: p for p in result["participants"]}
            if field_ == "muteVoiceMember":
                return ALLOWED if states[target.user_id]["serverMute"] is True else json.dumps(result)
            return ALLOWED if target.user_id not in states else json.dumps(result)

    return attempt


async def ban_and_list(world: World, subject: Member, resource: Resource) -> str:
    banned = await on_newcomer(BAN, "Ban")(world, subject, resource)
    listed = (await subject.client.data(BANS, {"s": resource.server_id}))["bans"]
    for ban in listed or []:  # lift them again: the server stays small
        lifted = await subject.client.data(UNBAN, {"s": resource.server_id, "u": ban["user"]["id"]})
        assert lifted["unbanMember"]["__typename"] == "BanLifted", lifted
    return both(banned, ALLOWED if listed else json.dumps(listed))


@dataclass(frozen=True)
class Governed:
    """One row of the matrix: a permission, the operation it governs, and how denial looks."""

    operation: str
    permission: Permission
    attempt: Attempt
    denied_as: str
    needs: Permission = Permission.VIEW_CHANNEL  # also held by every subject, so only `permission` decides
    resource: str = "TEXT"  # TEXT / VOICE / FOLDER (a channel of that kind) or SERVER
    server_wide_too: bool = False  # an overwrite alone cannot grant it: it is checked server-wide as well

    def expected(self, scenario: Scenario) -> str:
        allowed = scenario.allowed and not (self.server_wide_too and scenario.subject == "ungranted")
        return ALLOWED if allowed else self.denied_as


HIDDEN = "null"  # a channel you cannot view answers like a missing one (test_invisible_equals_missing)
FORBIDDEN = "PermissionError:FORBIDDEN"


def server_wide(
    operation: str, permission: Permission, attempt: Attempt, denied_as: str = FORBIDDEN
) -> Governed:
    """A row for a server-wide operation: channel overwrites play no part in it."""
    return Governed(operation, permission, attempt, denied_as, Permission(0), "SERVER")


VIEW, READ_HISTORY = Permission.VIEW_CHANNEL, Permission.READ_MESSAGE_HISTORY
CONNECT = Permission.VIEW_CHANNEL | Permission.CONNECT
GOVERNED = (
    Governed("channel query", VIEW, view_channel, HIDDEN, Permission(0)),
    Governed("server.channels", VIEW, listed_in_server_channels, "absent", Permission(0)),
    Governed("message.channel reference", VIEW, message_channel_reference, HIDDEN, READ_HISTORY),
    Governed("channel _entities in its subgraph", VIEW, subgraph_entities, HIDDEN, Permission(0)),
    Governed("messageEvents subscription", VIEW, subscribe_to_events, "NOT_FOUND", READ_HISTORY),
    Governed("sendMessage (hidden)", VIEW, send_message, "NotFoundError:NOT_FOUND", Permission.SEND_MESSAGES),
    Governed("sendMessage", Permission.SEND_MESSAGES, send_message, FORBIDDEN),
    Governed("messages (history)", READ_HISTORY, read_history, "null"),
    Governed("message by id", READ_HISTORY, read_one_message, "null"),
    Governed("messageEvents subscription", READ_HISTORY, subscribe_to_events, "NOT_FOUND"),
    Governed("delete another's message", Permission.MANAGE_MESSAGES, delete_others_message, FORBIDDEN, READ),
    Governed("updateChannel", Permission.MANAGE_CHANNELS, rename_channel, FORBIDDEN),
    Governed("moveChannel", Permission.MANAGE_CHANNELS, reorder_channel, FORBIDDEN),
    Governed("deleteChannel", Permission.MANAGE_CHANNELS, delete_channel, FORBIDDEN),
    Governed(
        "createChannel in a folder",
        Permission.MANAGE_CHANNELS,
        create_in_folder,
        FORBIDDEN,
        resource="FOLDER",
        server_wide_too=True,
    ),
    Governed("setChannelOverwrite", Permission.MANAGE_ROLES, set_channel_overwrite, FORBIDDEN),
    Governed("webhooks", Permission.MANAGE_WEBHOOKS, list_webhooks, "null"),
    Governed("addReaction", Permission.ADD_REACTIONS, add_reaction, FORBIDDEN, READ),
    Governed("pinMessage", Permission.PIN_MESSAGES, pin_message, FORBIDDEN, READ),
    Governed(
        "sendMessage @everyone",
        Permission.MENTION_EVERYONE,
        mention_everyone,
        "not mentioning",
        Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES,
    ),
    Governed(
        "link preview of sendMessage",
        Permission.EMBED_LINKS,
        embed_links,
        "no preview",
        Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES,
    ),
    Governed(
        "uploadAttachment, sendMessage with files",
        Permission.ATTACH_FILES,
        attach_files,
        f"{FORBIDDEN}+{FORBIDDEN}",
        Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES,
    ),
    Governed("joinVoice", Permission.CONNECT, join_voice, FORBIDDEN, resource="VOICE"),
    Governed("joinVoice (speaking)", Permission.SPEAK, speak, "suppressed", CONNECT, "VOICE"),
    Governed("joinVoice with a camera", Permission.STREAM, stream_camera, FORBIDDEN, CONNECT, "VOICE"),
    Governed(
        "muteVoiceMember",
        Permission.MUTE_MEMBERS,
        on_participant(MUTE_MEMBER, "muteVoiceMember"),
        FORBIDDEN,
        resource="VOICE",
    ),
    Governed(
        "disconnectVoiceMember",
        Permission.MOVE_MEMBERS,
        on_participant(DISCONNECT_MEMBER, "disconnectVoiceMember"),
        FORBIDDEN,
        resource="VOICE",
    ),
    server_wide("createChannel", Permission.MANAGE_CHANNELS, create_top_level_channel),
    server_wide("createRole, deleteRole", Permission.MANAGE_ROLES, create_and_delete_role),
    server_wide("invites, revokeInvite", Permission.MANAGE_SERVER, manage_invites, f"null+{FORBIDDEN}"),
    server_wide("updateServer", Permission.MANAGE_SERVER, update_server),
    server_wide("auditLog", Permission.VIEW_AUDIT_LOG, read_audit_log, "null"),
    server_wide("createInvite (private server)", Permission.CREATE_INVITE, create_invite),
    server_wide("kickMember", Permission.KICK_MEMBERS, on_newcomer(KICK, "MemberRemoved")),
    server_wide("banMember, bans", Permission.BAN_MEMBERS, ban_and_list, f"{FORBIDDEN}+null"),
    server_wide(
        "timeoutMember", Permission.MODERATE_MEMBERS, on_newcomer(TIMEOUT, "MemberTimeout", seconds=60)
    ),
)


def cases() -> list[Any]:
    found = []
    for row in GOVERNED:
        scenarios = SERVER_SCENARIOS if row.resource == "SERVER" else CHANNEL_SCENARIOS
        for scenario in scenarios:
            if row.resource == "FOLDER" and scenario.placement != "top":
                continue  # folders do not nest
            name = f"{row.permission.name}:{row.operation}:{scenario.name}"
            found.append(pytest.param(row, scenario, id=name))
    return found


@pytest.mark.parametrize(("row", "scenario"), cases())
async def test_governed_permission(world: World, row: Governed, scenario: Scenario) -> None:
    """Given a subject and the scenario's overwrites, myPermissions reports the permission exactly when the
    scenario allows it, and the operation succeeds, or is refused the way the API documents."""
    subject = await subject_for(world, scenario, row.permission, row.needs)
    if row.resource == "SERVER":
        resource = Resource(world.server_id)
    else:
        resource = await arrange(world, scenario, subject, row.permission, row.resource)
    try:
        server_wide, in_channel = await reported(subject, resource)
        if row.resource == "SERVER":
            assert (row.permission in server_wide) is scenario.allowed, server_wide
        else:
            assert (row.permission in in_channel) is scenario.allowed, in_channel
        assert await row.attempt(world, subject, resource) == row.expected(scenario)
    finally:
        if resource.channel_id or resource.folder_id:
            await world.delete(resource.folder_id or resource.channel_id)


UNGOVERNED_BITS = Permission(sum(p.value for p in UNGOVERNED))


def each_bit(value: Permission, expected: bool) -> dict[str, bool]:
    """{permission: reported} for the ungoverned permissions where `value` disagrees with `expected`."""
    return {p.name or "": p in value for p in UNGOVERNED if (p in value) is not expected}


@pytest.mark.parametrize("scenario", CHANNEL_SCENARIOS, ids=[s.name for s in CHANNEL_SCENARIOS])
async def test_ungoverned_permissions_are_reported(world: World, scenario: Scenario) -> None:
    """The permissions no operation checks yet (UNGOVERNED) still go through the one evaluation: granted
    and denied by roles, overwrites and folders, they are reported by Channel.myPermissions, and by
    Server.myPermissions for what roles grant server-wide."""
    subject = await subject_for(world, scenario, UNGOVERNED_BITS, Permission.VIEW_CHANNEL)
    resource = await arrange(world, scenario, subject, UNGOVERNED_BITS, "VOICE")
    try:
        server_wide, in_channel = await reported(subject, resource)
        assert each_bit(in_channel, scenario.allowed) == {}
        granted_by_roles = scenario.subject != "ungranted"
        assert each_bit(server_wide, granted_by_roles) == {}
    finally:
        await world.delete(resource.folder_id or resource.channel_id)


async def test_administrator_and_owner_hold_every_permission(world: World) -> None:
    admin = await world.member_with(Permission.ADMINISTRATOR)
    for who in (admin, world.owner):
        data = await who.client.data(SERVER_PERMISSIONS, {"s": world.server_id})
        assert data["server"]["myPermissions"] == str(int(ALL_PERMISSIONS))
    plain = await world.member_with(Permission(0))
    data = await plain.client.data(SERVER_PERMISSIONS, {"s": world.server_id})
    assert data["server"]["myPermissions"] == "0"  # @everyone grants nothing on this server


# --- a channel you cannot view is a channel that does not exist -----------------------------------------

ID_PROBES: dict[str, str] = {
    "channel": "query($id: ID!) { channel(id: $id) { id name } }",
    "messages": "query($id: ID!) { messages(channelId: $id) { edges { cursor } } }",
    "webhooks": "query($id: ID!) { webhooks(channelId: $id) { id } }",
    "sendMessage": f"""mutation($id: ID!) {{ sendMessage(input: {{channelId: $id, content: "hi"}}) {{
      __typename {ERRORS} }} }}""",
    "updateChannel": f"""mutation($id: ID!) {{ updateChannel(input: {{id: $id, name: "x"}}) {{
      __typename {ERRORS} }} }}""",
    "moveChannel": f"""mutation($id: ID!) {{ moveChannel(input: {{id: $id, position: 0}}) {{
      __typename {ERRORS} }} }}""",
    "deleteChannel": f"mutation($id: ID!) {{ deleteChannel(id: $id) {{ __typename {ERRORS} }} }}",
    "setChannelOverwrite": f"""mutation($id: ID!, $me: ID!) {{ setChannelOverwrite(input: {{channelId: $id,
      targetKind: MEMBER, targetId: $me, allow: "1024"}}) {{ __typename {ERRORS} }} }}""",
    "removeChannelOverwrite": f"""mutation($id: ID!, $me: ID!) {{ removeChannelOverwrite(channelId: $id,
      targetKind: MEMBER, targetId: $me) {{ __typename {ERRORS} }} }}""",
    "setChannelVisibility": f"""mutation($id: ID!) {{ setChannelVisibility(input: {{channelId: $id,
      private: false}}) {{ __typename {ERRORS} }} }}""",
    "createChannel in it": f"""mutation($id: ID!, $s: ID!) {{ createChannel(input: {{serverId: $s, name: "x",
      parentId: $id}}) {{ __typename {ERRORS} }} }}""",
    "moveChannel into it": f"""mutation($id: ID!, $other: ID!) {{ moveChannel(input: {{id: $other,
      parentId: $id, position: 0}}) {{ __typename {ERRORS} }} }}""",
}
MESSAGE_PROBES: dict[str, str] = {
    "message": "query($id: ID!) { message(id: $id) { id channel { id } } }",
    "editMessage": f"""mutation($id: ID!) {{ editMessage(input: {{id: $id, content: "x"}}) {{
      __typename {ERRORS} }} }}""",
    "deleteMessage": f"mutation($id: ID!) {{ deleteMessage(id: $id) {{ __typename {ERRORS} }} }}",
}


@dataclass
class Hideout:
    """A member who may view channels and manage them (so only visibility can stop them), channels hidden
    from them by a member overwrite, and the same kinds of things that do not exist."""

    viewer: Member
    other: str  # a channel the viewer may move
    hidden: dict[str, str]  # kind -> id
    missing: dict[str, str]  # kind -> id (created, then deleted)

    async def answers(self, world: World, query: str, kind: str, which: dict[str, str]) -> str:
        variables = {"id": which[kind], "me": self.viewer.user_id, "s": world.server_id, "other": self.other}
        result = await self.viewer.client.execute(query, variables)
        text = json.dumps({"data": result.data, "errors": result.errors}, sort_keys=True)
        return text.replace(which[kind], "<id>")


@pytest.fixture(scope="module")
async def hideout(world: World) -> AsyncIterator[Hideout]:
    owner = world.owner.client
    managers = Permission.MANAGE_CHANNELS | Permission.MANAGE_ROLES | Permission.MANAGE_WEBHOOKS
    viewer = await world.member_with(READ | Permission.SEND_MESSAGES | Permission.MANAGE_MESSAGES | managers)
    made: dict[str, dict[str, str]] = {"hidden": {}, "missing": {}}
    for which in made:
        for kind in ("TEXT", "FOLDER"):
            channel = await world.create(f"{which}-{kind}", kind=kind)
            made[which][kind] = channel["id"]
        made[which]["message"] = (await send(owner, made[which]["TEXT"], "secret"))["id"]
    for kind in ("TEXT", "FOLDER"):
        await overwrite(
            owner, made["hidden"][kind], "MEMBER", viewer.user_id, deny=bits(Permission.VIEW_CHANNEL)
        )
        await world.delete(made["missing"][kind])  # its message goes with it
    other = await world.create("other")
    yield Hideout(viewer, other["id"], made["hidden"], made["missing"])
    for channel_id in (*made["hidden"].values(), other["id"]):
        if channel_id != made["hidden"]["message"]:
            await world.delete(channel_id)


PROBES = [
    pytest.param(query, kind, id=f"{name} ({kind.lower()})")
    for name, query in ID_PROBES.items()
    for kind in ("TEXT", "FOLDER")
] + [pytest.param(query, "message", id=name) for name, query in MESSAGE_PROBES.items()]


@pytest.mark.parametrize(("query", "kind"), PROBES)
async def test_invisible_equals_missing(world: World, hideout: Hideout, query: str, kind: str) -> None:
    """Queries and mutations answer a hidden channel (or a message in one) exactly as a missing one."""
    hidden = await hideout.answers(world, query, kind, hideout.hidden)
    assert hidden == await hideout.answers(world, query, kind, hideout.missing)


async def test_invisible_equals_missing_in_entities_and_subscriptions(world: World, hideout: Hideout) -> None:
    """Entity references (the subgraphs' _entities, as the router calls them) and messageEvents give a
    hidden channel and its messages the same answer as missing ones."""
    for subgraph, typename_, kind in (
        ("channels", "Channel", "TEXT"),
        ("channels", "Channel", "FOLDER"),
        ("messages", "Message", "message"),
    ):  # (webhooks and messages hold Channel as a stub the router never resolves there)
        hidden = await entities(world, hideout.viewer, subgraph, typename_, hideout.hidden[kind])
        missing = await entities(world, hideout.viewer, subgraph, typename_, hideout.missing[kind])
        assert hidden == missing == {"data": {"_entities": [None]}}, (subgraph, typename_)

    async def stream_ends(query: str, channel_id: str) -> dict[str, Any]:
        async with hideout.viewer.client.subscriptions() as connection:
            events = await subscribe_settled(connection, query, {"channelId": channel_id})
            message = await events.next()
            return json.loads(json.dumps(message).replace(channel_id, "<id>"))

    member_events = (
        "subscription($channelId: ID!) { channelMemberEvents(channelId: $channelId) { __typename } }"
    )
    for query in (MESSAGE_EVENTS, member_events):
        hidden = await stream_ends(query, hideout.hidden["TEXT"])
        assert hidden == await stream_ends(query, hideout.missing["TEXT"])
        assert stream_error_code(hidden) == "NOT_FOUND"


async def test_folders_do_not_reveal_hidden_neighbours(world: World) -> None:
    """A visible folder lists only the children you can view; a visible channel in a hidden folder has no
    parent as far as you can tell; server.channels lists neither hidden one."""
    owner = world.owner.client
    viewer = await world.member_with(READ)
    open_folder = await world.create("open", kind="FOLDER")
    hidden_child = await world.create("hidden-child", parentId=open_folder["id"])
    closed_folder = await world.create("closed", kind="FOLDER")
    shown_child = await world.create("shown-child", parentId=closed_folder["id"])
    view = bits(Permission.VIEW_CHANNEL)
    await overwrite(owner, shown_child["id"], "MEMBER", viewer.user_id, allow=view)  # its own: unsynced
    await overwrite(owner, hidden_child["id"], "MEMBER", viewer.user_id, deny=view)
    await overwrite(owner, closed_folder["id"], "MEMBER", viewer.user_id, deny=view)
    try:
        data = await viewer.client.data(
            """query($s: ID!, $open: ID!, $shown: ID!) { server(id: $s) { channels { id } }
              open: channel(id: $open) { children { id } }
              shown: channel(id: $shown) { id parent { id } } }""",
            {"s": world.server_id, "open": open_folder["id"], "shown": shown_child["id"]},
        )
        assert data["open"] == {"children": []}
        assert data["shown"] == {"id": shown_child["id"], "parent": None}
        listed = {c["id"] for c in data["server"]["channels"]}
        assert {open_folder["id"], shown_child["id"]} <= listed
        assert not {hidden_child["id"], closed_folder["id"]} & listed
    finally:
        await world.delete(open_folder["id"])
        await world.delete(closed_folder["id"])
