"""Invites (codes in the directory, members in the tenant's shard), leaving and handing a server over, and
discovering public servers across every shard — through the router, in both modes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from subgraphs.kernel.tenancy.permissions import DEFAULT_MEMBER_PERMISSIONS, Permission
from tests.harness.stack import Stack
from tests.integration.flows import (
    ACCEPT_INVITE,
    CREATE_SERVER,
    DEFAULT_CHANNEL_NAMES,
    DISCOVER,
    ERROR_FIELDS,
    JOIN_SERVER,
    LIST_INVITES,
    MY_SERVERS,
    REVOKE_INVITE,
    Users,
    accept,
    create_server,
    grant_role,
    invite,
    unique,
)

PREVIEW = "query($c: String!) { invite(code: $c) { inviteCode valid expiresAt serverName memberCount } }"
LEAVE = f"""mutation($s: ID!) {{ leaveServer(serverId: $s) {{
  __typename ... on ServerLeft {{ serverId }} {ERROR_FIELDS} }} }}"""
TRANSFER = f"""mutation($s: ID!, $u: ID!) {{ transferOwnership(serverId: $s, userId: $u) {{
  __typename ... on Server {{ id owner {{ id }} myPermissions }} {ERROR_FIELDS} }} }}"""
SERVER = (
    "query($s: ID!) { server(id: $s) { id name memberCount viewerIsMember myPermissions channels { name } } }"
)


async def test_private_server_invite_preview_accept_and_see_channels(stack: Stack) -> None:
    users = Users(stack)
    owner, as_owner = await users.new("own")
    outsider, as_outsider = await users.new("out")
    data = await as_owner.data(
        CREATE_SERVER,
        {"input": {"name": "Hideout", "visibility": "PRIVATE", "description": "the secret plans"}},
    )
    server = data["createServer"]

    created = await invite(as_owner, server["id"], maxUses=5)
    assert created["__typename"] == "Invite", created
    code = created["inviteCode"]
    assert len(code) >= 8 and code.isalnum()
    assert (created["maxUses"], created["uses"], created["revoked"], created["valid"]) == (5, 0, False, True)
    assert created["server"] == {"id": server["id"], "name": "Hideout"}
    assert created["creator"] == {"id": owner.user_id}
    expires = datetime.fromisoformat(created["expiresAt"])  # 7 days unless asked otherwise
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)

    # Given the code, an outsider (or anyone, signed in or not) sees the server's name and size only.
    assert (await as_outsider.data(SERVER, {"s": server["id"]}))["server"] is None
    for viewer in (as_outsider, users.anonymous):
        preview = (await viewer.data(PREVIEW, {"c": code}))["invite"]
        assert preview == {
            "inviteCode": code,
            "valid": True,
            "expiresAt": created["expiresAt"],
            "serverName": "Hideout",
            "memberCount": 1,
        }
    shape = await users.anonymous.data('{ __type(name: "InvitePreview") { fields { name } } }')
    assert {f["name"] for f in shape["__type"]["fields"]} == {
        "inviteCode",
        "valid",
        "expiresAt",
        "serverName",
        "memberCount",
    }

    joined = await accept(as_outsider, code)
    assert joined == {
        "__typename": "Server",
        "id": server["id"],
        "name": "Hideout",
        "viewerIsMember": True,
        "memberCount": 2,
    }
    seen = (await as_outsider.data(SERVER, {"s": server["id"]}))["server"]
    assert seen["channels"] == DEFAULT_CHANNEL_NAMES
    assert seen["myPermissions"] == str(int(DEFAULT_MEMBER_PERMISSIONS))
    again = await accept(as_outsider, code)
    assert (again["__typename"], again["code"], again["field"]) == ("ConflictError", "ALREADY_MEMBER", "code")

    listed = (await as_owner.data(LIST_INVITES, {"s": server["id"]}))["invites"]
    assert listed == [
        {"inviteCode": code, "uses": 1, "maxUses": 5, "valid": True, "creator": {"id": owner.user_id}}
    ]
    assert (await as_outsider.data(LIST_INVITES, {"s": server["id"]}))["invites"] is None  # not a manager

    # On a private server, @everyone's Create Invite is not enough; a role that grants it is.
    refused = await invite(as_outsider, server["id"])
    assert (refused["__typename"], refused["code"], refused["field"]) == (
        "PermissionError",
        "FORBIDDEN",
        "serverId",
    )
    await grant_role(as_owner, server["id"], outsider.user_id, Permission.CREATE_INVITE)
    allowed = await invite(as_outsider, server["id"], maxAgeSeconds=None)
    assert (allowed["__typename"], allowed["expiresAt"]) == ("Invite", None)
    # ...and its creator may revoke it, though they may not list the server's invites.
    revoked = (await as_outsider.data(REVOKE_INVITE, {"c": allowed["inviteCode"]}))["revokeInvite"]
    assert revoked == {
        "__typename": "Invite",
        "inviteCode": allowed["inviteCode"],
        "revoked": True,
        "valid": False,
    }


async def test_who_may_invite_on_public_and_private_servers(stack: Stack) -> None:
    users = Users(stack)
    _owner, as_owner = await users.new("own")
    member, as_member = await users.new("mem")
    _stranger, as_stranger = await users.new("str")
    public = await create_server(as_owner, "Open house", "PUBLIC")
    private = await create_server(as_owner, "Closed house", "PRIVATE")
    await as_member.data(JOIN_SERVER, {"id": public["id"]})
    code = (await invite(as_owner, private["id"]))["inviteCode"]
    assert (await accept(as_member, code))["__typename"] == "Server"

    assert (await invite(as_member, public["id"]))["__typename"] == "Invite"  # any member of a public one
    assert (await invite(as_member, private["id"]))["__typename"] == "PermissionError"
    not_member = await invite(as_stranger, public["id"])
    assert (not_member["__typename"], not_member["field"]) == ("PermissionError", "serverId")
    hidden = await invite(as_stranger, private["id"])  # a private server's existence does not leak
    assert (hidden["__typename"], hidden["code"]) == ("NotFoundError", "NOT_FOUND")

    await grant_role(as_owner, private["id"], member.user_id, Permission.MANAGE_SERVER)
    managed = await invite(as_member, private["id"])
    assert managed["__typename"] == "Invite"
    listed = (await as_member.data(LIST_INVITES, {"s": private["id"]}))["invites"]
    assert {i["inviteCode"] for i in listed} == {code, managed["inviteCode"]}
    assert (await as_stranger.data(LIST_INVITES, {"s": private["id"]}))["invites"] is None


async def test_expired_revoked_and_used_up_invites_are_refused(stack: Stack) -> None:
    users = Users(stack)
    _owner, as_owner = await users.new("own")
    server = await create_server(as_owner, "Limits", "PRIVATE")

    short = await invite(as_owner, server["id"], maxAgeSeconds=1)
    assert short["__typename"] == "Invite" and short["valid"] is True
    await asyncio.sleep(1.5)  # the invite's expiry is the behaviour under test: let it pass
    _late, as_late = await users.new("late")
    expired = await accept(as_late, short["inviteCode"])
    assert (expired["__typename"], expired["code"], expired["field"]) == (
        "NotFoundError",
        "NOT_FOUND",
        "code",
    )
    assert "expired" in expired["message"]
    dead = (await as_late.data(PREVIEW, {"c": short["inviteCode"]}))["invite"]
    assert dead == {
        "inviteCode": short["inviteCode"],
        "valid": False,
        "expiresAt": short["expiresAt"],
        "serverName": None,  # a dead invite names nothing
        "memberCount": None,
    }

    revocable = await invite(as_owner, server["id"])
    _member, as_member = await users.new("mem")
    assert (await accept(as_member, revocable["inviteCode"]))["__typename"] == "Server"
    not_theirs = (await as_member.data(REVOKE_INVITE, {"c": revocable["inviteCode"]}))["revokeInvite"]
    assert (not_theirs["__typename"], not_theirs["field"]) == ("PermissionError", "code")
    outsider = (await as_late.data(REVOKE_INVITE, {"c": revocable["inviteCode"]}))["revokeInvite"]
    assert (outsider["__typename"], outsider["code"]) == ("NotFoundError", "NOT_FOUND")
    for _ in range(2):  # revoking twice is harmless
        revoked = (await as_owner.data(REVOKE_INVITE, {"c": revocable["inviteCode"]}))["revokeInvite"]
        assert (revoked["__typename"], revoked["revoked"], revoked["valid"]) == ("Invite", True, False)
    refused = await accept(as_late, revocable["inviteCode"])
    assert (refused["__typename"], refused["code"]) == ("NotFoundError", "NOT_FOUND")
    assert "revoked" in refused["message"]

    twice = await invite(as_owner, server["id"], maxUses=2)
    first, second, third = [await users.new(f"u{i}") for i in range(3)]
    assert (await accept(first[1], twice["inviteCode"]))["__typename"] == "Server"
    assert (await accept(second[1], twice["inviteCode"]))["memberCount"] == 4
    used_up = await accept(third[1], twice["inviteCode"])
    assert (used_up["__typename"], used_up["code"], used_up["field"]) == (
        "ValidationError",
        "LIMIT_REACHED",
        "code",
    )
    assert (await third[1].data(SERVER, {"s": server["id"]}))["server"] is None
    listed = (await as_owner.data(LIST_INVITES, {"s": server["id"]}))["invites"]
    assert listed == []  # only invites that can still be accepted are listed


async def test_concurrent_accepts_of_the_last_use_admit_exactly_one(stack: Stack) -> None:
    users = Users(stack)
    _owner, as_owner = await users.new("own")
    server = await create_server(as_owner, "Last seat", "PRIVATE")
    for round_ in range(3):
        code = (await invite(as_owner, server["id"], maxUses=1))["inviteCode"]
        racers = [await users.new(f"race{round_}{i}") for i in range(2)]
        results = await asyncio.gather(*(accept(client, code) for _account, client in racers))
        kinds = sorted((r["__typename"], r.get("code")) for r in results)
        assert kinds == [("Server", None), ("ValidationError", "LIMIT_REACHED")], results
    listed = (await as_owner.data(SERVER, {"s": server["id"]}))["server"]
    assert listed["memberCount"] == 1 + 3


async def test_leave_and_transfer_ownership(stack: Stack) -> None:
    users = Users(stack)
    owner, as_owner = await users.new("own")
    bob, as_bob = await users.new("bob")
    carol, as_carol = await users.new("car")
    server = await create_server(as_owner, "Handover", "PRIVATE")
    code = (await invite(as_owner, server["id"]))["inviteCode"]
    for client in (as_bob, as_carol):
        assert (await accept(client, code))["__typename"] == "Server"

    stuck = (await as_owner.data(LEAVE, {"s": server["id"]}))["leaveServer"]
    assert (stuck["__typename"], stuck["code"], stuck["field"]) == (
        "PermissionError",
        "FORBIDDEN",
        "serverId",
    )
    assert "transfer" in stuck["message"]

    not_owner = (await as_bob.data(TRANSFER, {"s": server["id"], "u": carol.user_id}))["transferOwnership"]
    assert (not_owner["__typename"], not_owner["code"]) == ("PermissionError", "FORBIDDEN")
    eve, _ = await users.new("eve")
    stranger = (await as_owner.data(TRANSFER, {"s": server["id"], "u": eve.user_id}))["transferOwnership"]
    assert (stranger["__typename"], stranger["field"]) == ("NotFoundError", "userId")
    to_self = (await as_owner.data(TRANSFER, {"s": server["id"], "u": owner.user_id}))["transferOwnership"]
    assert (to_self["__typename"], to_self["field"]) == ("ValidationError", "userId")

    # A member who leaves loses their roles: back through an invite, they start from @everyone.
    await grant_role(as_owner, server["id"], carol.user_id, Permission.MANAGE_MESSAGES)
    assert (await as_carol.data(LEAVE, {"s": server["id"]}))["leaveServer"] == {
        "__typename": "ServerLeft",
        "serverId": server["id"],
    }
    assert (await as_carol.data(SERVER, {"s": server["id"]}))["server"] is None  # private: gone from view
    assert server["id"] not in [s["id"] for s in (await as_carol.data(MY_SERVERS))["myServers"]]
    gone = (await as_carol.data(LEAVE, {"s": server["id"]}))["leaveServer"]
    assert (gone["__typename"], gone["code"]) == ("NotFoundError", "NOT_FOUND")
    assert (await accept(as_carol, code))["__typename"] == "Server"
    back = (await as_carol.data(SERVER, {"s": server["id"]}))["server"]
    assert back["myPermissions"] == str(int(DEFAULT_MEMBER_PERMISSIONS))

    other = await create_server(as_carol, "Carol's own", "PUBLIC")
    listed = [s["id"] for s in (await as_carol.data(MY_SERVERS))["myServers"]]
    assert listed == [other["id"], server["id"]]  # most recently joined first

    handed = (await as_owner.data(TRANSFER, {"s": server["id"], "u": bob.user_id}))["transferOwnership"]
    assert handed["__typename"] == "Server" and handed["owner"] == {"id": bob.user_id}
    assert handed["myPermissions"] == str(int(DEFAULT_MEMBER_PERMISSIONS))  # the former owner is a member
    bob_view = (await as_bob.data(SERVER, {"s": server["id"]}))["server"]
    assert int(bob_view["myPermissions"]) & int(Permission.ADMINISTRATOR)
    assert (await as_bob.data(LEAVE, {"s": server["id"]}))["leaveServer"]["__typename"] == "PermissionError"
    left = (await as_owner.data(LEAVE, {"s": server["id"]}))["leaveServer"]
    assert left["__typename"] == "ServerLeft"
    assert (await as_bob.data(SERVER, {"s": server["id"]}))["server"]["memberCount"] == 2


async def test_discovery_finds_public_servers_only_ranked_and_paged(stack: Stack) -> None:
    users = Users(stack)
    _owner, as_owner = await users.new("own")
    _fan, as_fan = await users.new("fan")
    tag = unique("zq")  # these tests share their databases: match only this test's servers
    prefix_a = await create_server(as_owner, f"{tag} alpha", "PUBLIC")
    contains = await create_server(as_owner, f"The {tag.upper()} club", "PUBLIC")
    prefix_b = await create_server(as_owner, f"{tag.upper()} beta", "PUBLIC")
    described = (
        await as_owner.data(
            CREATE_SERVER,
            {"input": {"name": "Quiet", "visibility": "PUBLIC", "description": f"we talk about {tag}"}},
        )
    )["createServer"]
    await create_server(as_owner, f"{tag} private", "PRIVATE")
    await as_fan.data(JOIN_SERVER, {"id": prefix_b["id"]})

    # Exact-prefix name matches first, then name-or-description matches; each group oldest first.
    expected = [prefix_a["id"], prefix_b["id"], contains["id"], described["id"]]
    found = (await as_fan.data(DISCOVER, {"q": tag, "n": 10}))["discoverServers"]
    assert [e["node"]["id"] for e in found["edges"]] == expected
    assert found["pageInfo"]["hasNextPage"] is False
    nodes = {e["node"]["id"]: e["node"] for e in found["edges"]}
    assert {n["visibility"] for n in nodes.values()} == {"PUBLIC"}
    assert nodes[prefix_b["id"]]["memberCount"] == 2 and nodes[prefix_b["id"]]["viewerIsMember"] is True
    assert nodes[prefix_a["id"]]["memberCount"] == 1 and nodes[prefix_a["id"]]["viewerIsMember"] is False
    upper = (await as_fan.data(DISCOVER, {"q": tag.upper(), "n": 10}))["discoverServers"]
    assert [e["node"]["id"] for e in upper["edges"]] == expected  # case-insensitive

    # One at a time, following the cursor: the same servers, in the same order, once each.
    paged, after = [], None
    while True:
        page = (await as_fan.data(DISCOVER, {"q": tag, "n": 1, "after": after}))["discoverServers"]
        assert len(page["edges"]) == 1
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        paged.append(page["edges"][0]["node"]["id"])
        after = page["pageInfo"]["endCursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
    assert paged == expected

    # LIKE's wildcards are plain characters in a query.
    assert (await as_fan.data(DISCOVER, {"q": f"{tag}%", "n": 10}))["discoverServers"]["edges"] == []
    assert (await as_fan.data(DISCOVER, {"q": f"{tag[:2]}_{tag[3:]}", "n": 10}))["discoverServers"][
        "edges"
    ] == []

    for variables, argument in (
        ({"q": tag, "n": 0}, "first"),
        ({"q": tag, "n": 21}, "first"),
        ({"q": tag, "after": "garbage"}, "after"),
        ({"q": "x" * 101}, "query"),
    ):
        bad = await as_fan.execute(DISCOVER, variables)
        assert bad.codes == ["BAD_USER_INPUT"], (variables, bad.errors)
        assert bad.errors[0]["extensions"].get("argument") == argument
    anonymous = await users.anonymous.execute(DISCOVER, {"q": tag})
    assert anonymous.codes == ["UNAUTHENTICATED"]


async def test_bad_invite_input_gets_typed_errors(stack: Stack) -> None:
    users = Users(stack)
    _owner, as_owner = await users.new("own")
    _other, as_other = await users.new("oth")
    server = await create_server(as_owner, "Strict", "PUBLIC")

    for limits, field in (
        ({"maxUses": 101}, "maxUses"),
        ({"maxUses": -1}, "maxUses"),
        ({"maxAgeSeconds": 7 * 24 * 3600 + 1}, "maxAgeSeconds"),
        ({"maxAgeSeconds": -1}, "maxAgeSeconds"),
    ):
        refused = await invite(as_owner, server["id"], **limits)
        assert (refused["__typename"], refused["code"], refused["field"]) == (
            "ValidationError",
            "INVALID_INPUT",
            field,
        ), limits
    assert (await invite(as_owner, "not-an-id"))["field"] == "serverId"
    missing = await invite(as_owner, str(int(server["id"]) + 1))
    assert (missing["__typename"], missing["code"]) == ("NotFoundError", "NOT_FOUND")
    bounds = [await invite(as_owner, server["id"], maxUses=n, maxAgeSeconds=a) for n, a in ((0, 0), (100, 1))]
    assert [(b["maxUses"], b["expiresAt"] is None) for b in bounds] == [(0, True), (100, False)]

    for garbage in ("abc", "short", "not a code!", "ab/cdefghij", ""):
        accepted = await accept(as_other, garbage)
        assert (accepted["__typename"], accepted["code"], accepted["field"]) == (
            "ValidationError",
            "INVALID_FORMAT",
            "code",
        ), garbage
        revoked = (await as_owner.data(REVOKE_INVITE, {"c": garbage}))["revokeInvite"]
        assert revoked["code"] == "INVALID_FORMAT"
        preview = await as_other.execute(PREVIEW, {"c": garbage})
        assert preview.codes == ["BAD_USER_INPUT"], garbage
    unknown = "Zz9" + "x" * 7
    assert (await accept(as_other, unknown))["code"] == "NOT_FOUND"
    assert (await as_other.data(PREVIEW, {"c": unknown}))["invite"] is None
    assert (await users.anonymous.execute(ACCEPT_INVITE, {"c": unknown})).codes == ["UNAUTHENTICATED"]
