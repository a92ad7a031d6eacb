"""Moderation: kicking, banning and timing members out, under Discord's role hierarchy — through the router,
in both modes, including what it does to live message streams."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from subgraphs.kernel.tenancy.permissions import Permission
from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import (
    BAN,
    BANS,
    ERRORS,
    JOIN_SERVER,
    KICK,
    MESSAGE_EVENTS,
    SEND_MESSAGE,
    TIMEOUT,
    UNBAN,
    Account,
    create_channel,
    create_server,
    outcome,
    send,
    sign_up,
    stream_error_code,
    subscribe_settled,
)

CREATE_INVITE = f"""mutation($i: CreateInviteInput!) {{ createInvite(input: $i) {{
  __typename ... on Invite {{ inviteCode uses }} {ERRORS} }} }}"""
ACCEPT_INVITE = (
    f"""mutation($c: String!) {{ acceptInvite(code: $c) {{ __typename ... on Server {{ id }} {ERRORS} }} }}"""
)
LIST_INVITES = "query($s: ID!) { invites(serverId: $s) { inviteCode uses } }"
CREATE_ROLE = f"""mutation($i: CreateRoleInput!) {{ createRole(input: $i) {{
  __typename ... on Role {{ id position }} {ERRORS} }} }}"""
ASSIGN_ROLE = "mutation($i: MemberRoleInput!) { assignRole(input: $i) { __typename } }"
LEAVE = "mutation($s: ID!) { leaveServer(serverId: $s) { __typename } }"
VIEWER = """query($s: ID!, $c: ID!) { server(id: $s) { viewerIsMember myPermissions myTimeoutUntil }
  channel(id: $c) { id } messages(channelId: $c) { edges { node { content } } } }"""
MODERATION = Permission.KICK_MEMBERS | Permission.BAN_MEMBERS | Permission.MODERATE_MEMBERS


class Guild:
    """A public server with an owner, two moderators (one role, so equals), a regular member with a lower
    role, and a plain member; one channel."""

    owner: Account
    mod: Account
    peer: Account
    bob: Account
    carol: Account

    def __init__(self, stack: Stack) -> None:
        self.anonymous = GraphQLClient(stack.router_url)

    def as_(self, account: Account) -> GraphQLClient:
        return self.anonymous.with_token(account.token)

    async def setup(self) -> Guild:
        self.owner, self.mod, self.peer, self.bob, self.carol = [
            await sign_up(self.anonymous, prefix) for prefix in ("own", "mod", "peer", "bob", "carol")
        ]
        owner = self.as_(self.owner)
        self.server = await create_server(owner, "Moderated")
        self.channel = await create_channel(owner, self.server["id"], "general")
        for account in (self.mod, self.peer, self.bob, self.carol):
            joined = await self.as_(account).data(JOIN_SERVER, {"id": self.server["id"]})
            assert joined["joinServer"]["__typename"] == "Server"
        mods = await self._role("Mods", MODERATION)
        regulars = await self._role("Regulars", Permission(0))  # goes below Mods
        for role_id, account in ((mods, self.mod), (mods, self.peer), (regulars, self.bob)):
            await owner.data(ASSIGN_ROLE, {"i": {"roleId": role_id, "userId": account.user_id}})
        return self

    async def _role(self, name: str, permissions: Permission) -> str:
        data = await self.as_(self.owner).data(
            CREATE_ROLE,
            {"i": {"serverId": self.server["id"], "name": name, "permissions": str(int(permissions))}},
        )
        assert data["createRole"]["__typename"] == "Role", data
        return str(data["createRole"]["id"])

    async def run(self, actor: Account, query: str, **variables: Any) -> dict[str, Any]:
        data = await self.as_(actor).data(query, {"s": self.server["id"], **variables})
        return dict(next(iter(data.values())))

    async def viewer(self, account: Account) -> dict[str, Any]:
        return await self.as_(account).data(VIEWER, {"s": self.server["id"], "c": self.channel["id"]})


async def test_kick_removes_access_and_the_member_may_rejoin(stack: Stack) -> None:
    g = await Guild(stack).setup()
    before = await g.viewer(g.bob)
    assert before["server"]["viewerIsMember"] is True and before["channel"] == {"id": g.channel["id"]}

    kicked = await g.run(g.mod, KICK, u=g.bob.user_id, r="spam")
    assert kicked == {"__typename": "MemberRemoved", "serverId": g.server["id"], "userId": g.bob.user_id}

    after = await g.viewer(g.bob)
    assert after["server"]["viewerIsMember"] is False
    assert after["channel"] is None and after["messages"] is None
    refused = await g.as_(g.bob).data(
        SEND_MESSAGE, {"input": {"channelId": g.channel["id"], "content": "hi"}}
    )
    assert refused["sendMessage"]["__typename"] == "NotFoundError"
    assert outcome(await g.run(g.mod, KICK, u=g.bob.user_id)) == ("NotFoundError", "NOT_FOUND", "userId")

    # A kick is not a ban: a public server may be joined again (with no roles).
    rejoined = await g.as_(g.bob).data(JOIN_SERVER, {"id": g.server["id"]})
    assert rejoined["joinServer"]["__typename"] == "Server"
    assert (await g.viewer(g.bob))["server"]["viewerIsMember"] is True


async def test_ban_blocks_joining_and_invites_until_unbanned(stack: Stack) -> None:
    g = await Guild(stack).setup()
    invite = await g.as_(g.owner).data(CREATE_INVITE, {"i": {"serverId": g.server["id"], "maxUses": 1}})
    code = invite["createInvite"]["inviteCode"]

    banned = await g.run(g.mod, BAN, u=g.bob.user_id, r="  repeated spam  ")
    assert banned["__typename"] == "Ban"
    assert banned["reason"] == "repeated spam" and banned["user"] == {"id": g.bob.user_id}
    assert banned["bannedBy"] == {"id": g.mod.user_id}
    assert (await g.viewer(g.bob))["server"]["viewerIsMember"] is False

    joined = await g.as_(g.bob).data(JOIN_SERVER, {"id": g.server["id"]})
    assert outcome(joined["joinServer"]) == ("PermissionError", "BANNED", "serverId")
    accepted = await g.as_(g.bob).data(ACCEPT_INVITE, {"c": code})
    assert outcome(accepted["acceptInvite"]) == ("PermissionError", "BANNED", "code")
    listed = await g.as_(g.owner).data(LIST_INVITES, {"s": g.server["id"]})
    assert listed["invites"] == [{"inviteCode": code, "uses": 0}]  # the refused accept spent no use

    # Someone who is not a member can be banned too (before they ever join).
    pre = await g.run(g.owner, BAN, u=g.carol.user_id)
    assert pre["__typename"] == "Ban" and pre["reason"] is None

    bans = (await g.as_(g.mod).data(BANS, {"s": g.server["id"]}))["bans"]
    assert {(b["user"]["id"], b["reason"], b["bannedBy"]["id"]) for b in bans} == {
        (g.bob.user_id, "repeated spam", g.mod.user_id),
        (g.carol.user_id, None, g.owner.user_id),
    }
    assert (await g.as_(g.bob).data(BANS, {"s": g.server["id"]}))["bans"] is None  # not a member
    assert (await g.anonymous.data(BANS, {"s": g.server["id"]}))["bans"] is None

    lifted = await g.run(g.mod, UNBAN, u=g.bob.user_id)
    assert lifted == {"__typename": "BanLifted", "serverId": g.server["id"], "userId": g.bob.user_id}
    assert outcome(await g.run(g.mod, UNBAN, u=g.bob.user_id)) == ("NotFoundError", "NOT_FOUND", "userId")
    accepted = await g.as_(g.bob).data(ACCEPT_INVITE, {"c": code})
    assert accepted["acceptInvite"]["__typename"] == "Server"
    bans = (await g.as_(g.owner).data(BANS, {"s": g.server["id"]}))["bans"]
    assert [b["user"]["id"] for b in bans] == [g.carol.user_id]


async def test_hierarchy_and_permissions_bind_moderators(stack: Stack) -> None:
    g = await Guild(stack).setup()
    in_an_hour = {"seconds": 3600}
    for query, extra in ((KICK, {}), (BAN, {}), (TIMEOUT, in_an_hour)):
        # Equal roles and the owner are out of reach; so is oneself.
        assert outcome(await g.run(g.mod, query, u=g.peer.user_id, **extra)) == (
            "PermissionError",
            "ROLE_HIERARCHY",
            "userId",
        )
        assert outcome(await g.run(g.mod, query, u=g.owner.user_id, **extra)) == (
            "PermissionError",
            "ROLE_HIERARCHY",
            "userId",
        )
        assert outcome(await g.run(g.mod, query, u=g.mod.user_id, **extra))[0] == "ValidationError"
        # Members without the permission may not moderate at all, even someone below them.
        assert outcome(await g.run(g.bob, query, u=g.carol.user_id, **extra)) == (
            "PermissionError",
            "FORBIDDEN",
            "serverId",
        )
    assert outcome(await g.run(g.bob, UNBAN, u=g.carol.user_id)) == (
        "PermissionError",
        "FORBIDDEN",
        "serverId",
    )
    # The owner is above every role.
    assert (await g.run(g.owner, TIMEOUT, u=g.mod.user_id, **in_an_hour))["__typename"] == "MemberTimeout"
    assert (await g.run(g.owner, KICK, u=g.peer.user_id))["__typename"] == "MemberRemoved"


async def test_bad_input_is_refused_with_typed_errors(stack: Stack) -> None:
    g = await Guild(stack).setup()
    too_long = await g.run(g.mod, BAN, u=g.bob.user_id, r="x" * 513)
    assert outcome(too_long) == ("ValidationError", "TOO_LONG", "reason")
    assert outcome(await g.run(g.mod, KICK, u=g.bob.user_id, r="x" * 513))[1:] == ("TOO_LONG", "reason")
    month = await g.run(g.mod, TIMEOUT, u=g.bob.user_id, seconds=28 * 24 * 3600 + 1)
    assert outcome(month) == ("ValidationError", "INVALID_INPUT", "seconds")
    far = (datetime.now(UTC) + timedelta(days=29)).isoformat()
    assert outcome(await g.run(g.mod, TIMEOUT, u=g.bob.user_id, until=far)) == (
        "ValidationError",
        "INVALID_INPUT",
        "until",
    )
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert outcome(await g.run(g.mod, TIMEOUT, u=g.bob.user_id, until=past))[2] == "until"
    for query in (KICK, BAN, UNBAN):
        bad_user = await g.run(g.mod, query, u="not-an-id")
        assert outcome(bad_user) == ("ValidationError", "INVALID_ID", "userId")
    bad_server = await g.as_(g.mod).data(KICK, {"s": "x", "u": g.bob.user_id})
    assert outcome(bad_server["kickMember"]) == ("ValidationError", "INVALID_ID", "serverId")
    assert (await g.as_(g.mod).execute(BANS, {"s": "nope"})).codes == ["BAD_USER_INPUT"]
    assert (await g.anonymous.execute(KICK, {"s": g.server["id"], "u": g.bob.user_id})).codes == [
        "UNAUTHENTICATED"
    ]


async def test_timeout_leaves_reading_and_live_streams_but_kick_ends_them(stack: Stack) -> None:
    g = await Guild(stack).setup()
    await send(g.as_(g.owner), g.channel["id"], "welcome")
    async with g.as_(g.bob).subscriptions() as connection:
        events = await subscribe_settled(connection, MESSAGE_EVENTS, {"channelId": g.channel["id"]})

        timed = await g.run(g.mod, TIMEOUT, u=g.bob.user_id, seconds=600)
        assert timed["__typename"] == "MemberTimeout" and timed["until"] is not None

        sending = await g.as_(g.bob).data(
            SEND_MESSAGE, {"input": {"channelId": g.channel["id"], "content": "let me talk"}}
        )
        assert outcome(sending["sendMessage"])[0] == "PermissionError"
        seen = await g.viewer(g.bob)
        assert seen["server"]["myTimeoutUntil"] is not None
        assert seen["server"]["myPermissions"] == str(
            int(Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY)
        )
        assert [e["node"]["content"] for e in seen["messages"]["edges"]] == ["welcome"]

        # The stream goes on: a timed-out member may still view the channel.
        await send(g.as_(g.owner), g.channel["id"], "during")
        during = await events.next(timeout=10)
        assert during["payload"]["data"]["messageEvents"]["message"]["content"] == "during"

        cleared = await g.run(g.mod, TIMEOUT, u=g.bob.user_id, seconds=0)
        assert cleared["__typename"] == "MemberTimeout" and cleared["until"] is None
        assert (await g.viewer(g.bob))["server"]["myTimeoutUntil"] is None
        await send(g.as_(g.bob), g.channel["id"], "thanks")
        mine = await events.next(timeout=10)
        assert mine["payload"]["data"]["messageEvents"]["message"]["content"] == "thanks"

        # A timeout until a moment (not seconds) works the same way; a kick then ends the stream at once.
        until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        assert (await g.run(g.mod, TIMEOUT, u=g.bob.user_id, until=until))["__typename"] == "MemberTimeout"
        assert (await g.run(g.mod, KICK, u=g.bob.user_id))["__typename"] == "MemberRemoved"
        assert stream_error_code(await events.next(timeout=10)) == "FORBIDDEN"


async def test_a_timeout_outlives_leaving_and_rejoining(stack: Stack) -> None:
    g = await Guild(stack).setup()
    assert (await g.run(g.mod, TIMEOUT, u=g.carol.user_id, seconds=600))["__typename"] == "MemberTimeout"
    left = await g.as_(g.carol).data(LEAVE, {"s": g.server["id"]})
    assert left["leaveServer"]["__typename"] == "ServerLeft"
    rejoined = await g.as_(g.carol).data(JOIN_SERVER, {"id": g.server["id"]})
    assert rejoined["joinServer"]["__typename"] == "Server"
    back = await g.viewer(g.carol)
    assert back["server"]["viewerIsMember"] is True
    assert back["server"]["myTimeoutUntil"] is not None  # leaving did not lift it
    sending = await g.as_(g.carol).data(
        SEND_MESSAGE, {"input": {"channelId": g.channel["id"], "content": "I'm back"}}
    )
    assert outcome(sending["sendMessage"])[0] == "PermissionError"
