"""Roles and channel overwrites govern every resource, the same way in queries, mutations, entity
references and subscriptions (Discord's evaluation order; folder channels pass their overwrites down)."""

from __future__ import annotations

from subgraphs.kernel.tenancy.permissions import ALL_PERMISSIONS, DEFAULT_MEMBER_PERMISSIONS, Permission
from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import (
    DEFAULT_CHANNEL_NAMES,
    JOIN_SERVER,
    MESSAGE_EVENTS,
    SEND_MESSAGE,
    create_channel,
    create_server,
    default_channel,
    send,
    sign_up,
    subscribe_settled,
)
from tests.integration.role_flows import (
    ASSIGN_ROLE,
    CREATE_ROLE,
    ROLE_FIELDS,
    UPDATE_ROLE,
    VIEW,
    bits,
    overwrite,
    role,
)


async def test_private_folder_moderator_role_and_member_overwrite(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    owner, bob = await sign_up(anonymous, "own"), await sign_up(anonymous, "bob")
    as_owner, as_bob = anonymous.with_token(owner.token), anonymous.with_token(bob.token)
    server = await create_server(as_owner, "Perms")
    general = await default_channel(as_owner, server["id"])
    staff = await create_channel(as_owner, server["id"], "Staff", kind="FOLDER")
    mod_chat = await create_channel(as_owner, server["id"], "mod-chat", parentId=staff["id"])
    await as_bob.data(JOIN_SERVER, {"id": server["id"]})

    mine = "query($s: ID!) { server(id: $s) { myPermissions roles { name isEveryone } } }"
    assert (await as_owner.data(mine, {"s": server["id"]}))["server"]["myPermissions"] == str(
        int(ALL_PERMISSIONS)
    )
    bob_view = (await as_bob.data(mine, {"s": server["id"]}))["server"]
    assert bob_view == {
        "myPermissions": str(int(DEFAULT_MEMBER_PERMISSIONS)),
        "roles": [{"name": "@everyone", "isEveryone": True}],
    }

    # The folder becomes private: hidden from @everyone (the role whose id is the server's).
    hidden = await overwrite(as_owner, staff["id"], "ROLE", server["id"], deny=VIEW)
    assert hidden["__typename"] == "Channel"
    see = """query($s: ID!, $c: ID!) { server(id: $s) { channels { name } }
               channel(id: $c) { name permissionsSynced } messages(channelId: $c) { edges { cursor } } }"""
    bob_sees = await as_bob.data(see, {"s": server["id"], "c": mod_chat["id"]})
    assert bob_sees == {"server": {"channels": DEFAULT_CHANNEL_NAMES}, "channel": None, "messages": None}
    owner_sees = await as_owner.data(see, {"s": server["id"], "c": mod_chat["id"]})
    assert owner_sees["channel"] == {
        "name": "mod-chat",
        "permissionsSynced": True,
    }  # inherits from the folder
    refused = await as_bob.data(SEND_MESSAGE, {"input": {"channelId": mod_chat["id"], "content": "hi"}})
    assert refused["sendMessage"]["__typename"] == "NotFoundError"  # invisible, not merely forbidden

    # A moderators role that may see the folder and manage messages.
    mods = await role(
        as_owner,
        CREATE_ROLE,
        serverId=server["id"],
        name="Mods",
        permissions=bits(Permission.MANAGE_MESSAGES),
    )
    assert mods["__typename"] == "Role" and mods["position"] == 1
    await overwrite(as_owner, staff["id"], "ROLE", mods["id"], allow=VIEW)
    assigned = await role(as_owner, ASSIGN_ROLE, roleId=mods["id"], userId=bob.user_id)
    assert assigned["__typename"] == "Role"
    bob_sees = await as_bob.data(see, {"s": server["id"], "c": mod_chat["id"]})
    assert bob_sees["channel"] == {"name": "mod-chat", "permissionsSynced": True}
    assert {c["name"] for c in bob_sees["server"]["channels"]} == {"general", "General", "Staff", "mod-chat"}
    owner_message = await send(as_owner, general["id"], "moderate me")
    removed = await as_bob.data(
        "mutation($id: ID!) { deleteMessage(id: $id) { __typename } }", {"id": owner_message["id"]}
    )
    assert removed["deleteMessage"]["__typename"] == "MessageDeleted"  # Manage Messages from the role

    # A member overwrite on one channel is last in the order and wins.
    muted = await overwrite(
        as_owner, general["id"], "MEMBER", bob.user_id, deny=bits(Permission.SEND_MESSAGES)
    )
    assert muted["__typename"] == "Channel"
    blocked = await as_bob.data(SEND_MESSAGE, {"input": {"channelId": general["id"], "content": "hello?"}})
    assert blocked["sendMessage"]["__typename"] == "PermissionError"
    perms = await as_bob.data("query($c: ID!) { channel(id: $c) { myPermissions } }", {"c": general["id"]})
    assert not int(perms["channel"]["myPermissions"]) & int(Permission.SEND_MESSAGES)

    # Overwriting a synced child unsyncs it with a copy of the folder's overwrites.
    child = await overwrite(
        as_owner, mod_chat["id"], "ROLE", mods["id"], allow=VIEW, deny=bits(Permission.SEND_MESSAGES)
    )
    assert child["permissionsSynced"] is False
    listing = await as_owner.data(
        "query($c: ID!) { channel(id: $c) { overwrites { targetKind targetId allow deny } } }",
        {"c": mod_chat["id"]},
    )
    assert {(o["targetId"], o["allow"], o["deny"]) for o in listing["channel"]["overwrites"]} == {
        (server["id"], "0", VIEW),
        (mods["id"], VIEW, bits(Permission.SEND_MESSAGES)),
    }
    assert (
        await as_bob.data(
            "query($c: ID!) { channel(id: $c) { overwrites { targetId } } }", {"c": mod_chat["id"]}
        )
    )["channel"]["overwrites"] == []  # not a role manager


async def test_role_hierarchy_and_bad_permission_input(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    owner, bob = await sign_up(anonymous, "own"), await sign_up(anonymous, "bob")
    as_owner, as_bob = anonymous.with_token(owner.token), anonymous.with_token(bob.token)
    server = await create_server(as_owner, "Ranks")
    await as_bob.data(JOIN_SERVER, {"id": server["id"]})

    assert (await role(as_bob, CREATE_ROLE, serverId=server["id"], name="x"))[
        "__typename"
    ] == "PermissionError"
    managers = await role(
        as_owner,
        CREATE_ROLE,
        serverId=server["id"],
        name="Managers",
        permissions=bits(Permission.MANAGE_ROLES, Permission.KICK_MEMBERS),
    )
    await role(as_owner, ASSIGN_ROLE, roleId=managers["id"], userId=bob.user_id)

    helpers = await role(
        as_bob, CREATE_ROLE, serverId=server["id"], name="Helpers", permissions=bits(Permission.KICK_MEMBERS)
    )
    assert helpers["__typename"] == "Role" and helpers["position"] == 1
    listed = await as_owner.data(
        "query($s: ID!) { server(id: $s) { roles { name position } } }", {"s": server["id"]}
    )
    assert listed["server"]["roles"] == [
        {"name": "Managers", "position": 2},
        {"name": "Helpers", "position": 1},
        {"name": "@everyone", "position": 0},
    ]
    # Bob cannot touch his own highest role, lift a role to it, or grant what he lacks.
    own_rank = await role(as_bob, UPDATE_ROLE, id=managers["id"], name="Bosses")
    assert (own_rank["__typename"], own_rank["code"]) == ("PermissionError", "ROLE_HIERARCHY")
    lifted = await role(as_bob, UPDATE_ROLE, id=helpers["id"], position=2)
    assert lifted["code"] == "ROLE_HIERARCHY"
    escalate = await role(as_bob, UPDATE_ROLE, id=helpers["id"], permissions=bits(Permission.ADMINISTRATOR))
    assert (escalate["__typename"], escalate["code"]) == ("PermissionError", "ROLE_HIERARCHY")
    renamed = await role(as_bob, UPDATE_ROLE, id=helpers["id"], name="Helpers 2")
    assert renamed == {
        "__typename": "Role",
        "id": helpers["id"],
        "name": "Helpers 2",
        "permissions": bits(Permission.KICK_MEMBERS),
        "position": 1,
    }

    for bad in ("abc", "-1", "1.5", str(1 << 62), ""):
        result = await role(as_owner, CREATE_ROLE, serverId=server["id"], name="Bad", permissions=bad)
        assert (result["__typename"], result["code"], result["field"]) == (
            "ValidationError",
            "INVALID_PERMISSIONS",
            "permissions",
        ), bad
    both = await overwrite(as_owner, server["id"], "ROLE", server["id"], allow=VIEW, deny=VIEW)
    assert both["code"] in ("INVALID_PERMISSIONS", "NOT_FOUND")
    foreign = await create_server(anonymous.with_token((await sign_up(anonymous, "eve")).token), "Elsewhere")
    general = await create_channel(as_owner, server["id"], "general")
    stranger_role = await overwrite(as_owner, general["id"], "ROLE", foreign["id"], deny=VIEW)
    assert (stranger_role["__typename"], stranger_role["field"]) == ("NotFoundError", "targetId")


async def test_losing_access_ends_the_subscription_at_once(stack: Stack) -> None:
    """No message has to arrive for the stream to end: the change itself is announced (AccessChanged)."""
    anonymous = GraphQLClient(stack.router_url)
    owner, bob = await sign_up(anonymous, "own"), await sign_up(anonymous, "bob")
    as_owner, as_bob = anonymous.with_token(owner.token), anonymous.with_token(bob.token)
    server = await create_server(as_owner, "Revocable")
    channel = await create_channel(as_owner, server["id"], "general")
    doomed = await create_channel(as_owner, server["id"], "doomed")
    await as_bob.data(JOIN_SERVER, {"id": server["id"]})
    vips = await role(as_owner, CREATE_ROLE, serverId=server["id"], name="VIPs")
    await overwrite(as_owner, channel["id"], "ROLE", server["id"], deny=VIEW)
    await overwrite(as_owner, channel["id"], "ROLE", vips["id"], allow=VIEW)
    await role(as_owner, ASSIGN_ROLE, roleId=vips["id"], userId=bob.user_id)

    def code_of(message: dict) -> str:
        errors = message["payload"].get("errors") if message["type"] == "next" else message["payload"]
        assert errors, message
        return str(errors[0]["extensions"]["code"])

    async with as_bob.subscriptions() as connection:
        events = await subscribe_settled(connection, MESSAGE_EVENTS, {"channelId": channel["id"]})
        on_doomed = await subscribe_settled(connection, MESSAGE_EVENTS, {"channelId": doomed["id"]})
        await send(as_owner, channel["id"], "before")
        first = await events.next()
        assert first["payload"]["data"]["messageEvents"]["message"]["content"] == "before"

        # A server-level change (the role that let Bob in is taken away) ends the stream.
        await as_owner.data(
            f"mutation($i: MemberRoleInput!) {{ unassignRole(input: $i) {{ {ROLE_FIELDS} }} }}",
            {"i": {"roleId": vips["id"], "userId": bob.user_id}},
        )
        assert code_of(await events.next(timeout=10)) == "FORBIDDEN"

        # Deleting a channel ends its streams too.
        deleted = await as_owner.data(
            "mutation($id: ID!) { deleteChannel(id: $id) { __typename } }", {"id": doomed["id"]}
        )
        assert deleted["deleteChannel"]["__typename"] == "ChannelDeleted"
        assert code_of(await on_doomed.next(timeout=10)) == "NOT_FOUND"


async def test_losing_view_ends_the_subscription(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    owner, bob = await sign_up(anonymous, "own"), await sign_up(anonymous, "bob")
    as_owner, as_bob = anonymous.with_token(owner.token), anonymous.with_token(bob.token)
    server = await create_server(as_owner, "Revocable")
    channel = await create_channel(as_owner, server["id"], "general")
    await as_bob.data(JOIN_SERVER, {"id": server["id"]})
    async with as_bob.subscriptions() as connection:
        events = await subscribe_settled(connection, MESSAGE_EVENTS, {"channelId": channel["id"]})
        await send(as_owner, channel["id"], "before")
        first = await events.next()
        assert first["payload"]["data"]["messageEvents"]["message"]["content"] == "before"
        await overwrite(as_owner, channel["id"], "MEMBER", bob.user_id, deny=VIEW)
        await send(as_owner, channel["id"], "after")
        ended = await events.next()
        errors = ended["payload"].get("errors") if ended["type"] == "next" else ended["payload"]
        assert errors and errors[0]["extensions"]["code"] == "FORBIDDEN", ended
        assert "after" not in str(ended)


async def test_permissions_are_listed_by_name_next_to_the_discord_string(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    owner, bob = await sign_up(anonymous, "own"), await sign_up(anonymous, "bob")
    as_owner, as_bob = anonymous.with_token(owner.token), anonymous.with_token(bob.token)
    server = await create_server(as_owner, "Named")
    general = await default_channel(as_owner, server["id"])
    await as_bob.data(JOIN_SERVER, {"id": server["id"]})

    # The schema names every permission, with Discord's bits as the user would look them up.
    names = await anonymous.data('{ __type(name: "PermissionFlag") { enumValues { name } } }')
    assert {v["name"] for v in names["__type"]["enumValues"]} >= {
        "MANAGE_CHANNELS",
        "ADMINISTRATOR",
        "VIEW_CHANNEL",
        "SEND_MESSAGES",
        "PIN_MESSAGES",
    }

    # A role of "16" + "8192" holds Manage Channels and Manage Messages, by name.
    made = await as_owner.data(
        """mutation($i: CreateRoleInput!) { createRole(input: $i) {
          ... on Role { id permissions permissionFlags } } }""",
        {"i": {"serverId": server["id"], "name": "Tidy", "permissions": str(16 | 8192)}},
    )
    assert made["createRole"]["permissions"] == "8208"
    assert made["createRole"]["permissionFlags"] == ["MANAGE_CHANNELS", "MANAGE_MESSAGES"]
    # Inputs take the names too: the same role given by flags, then changed by flags; not both at once.
    by_name = await role(
        as_owner,
        CREATE_ROLE,
        serverId=server["id"],
        name="Named",
        permissionFlags=["MANAGE_MESSAGES", "MANAGE_CHANNELS"],
    )
    assert (by_name["__typename"], by_name["permissions"]) == ("Role", "8208")
    changed = await role(as_owner, UPDATE_ROLE, id=by_name["id"], permissionFlags=["PIN_MESSAGES"])
    assert changed["permissions"] == str(1 << 51)
    both = await role(
        as_owner, UPDATE_ROLE, id=by_name["id"], permissions="16", permissionFlags=["PIN_MESSAGES"]
    )
    assert (both["__typename"], both["field"]) == ("ValidationError", "permissionFlags")

    # A member's own permissions: the same string as before, and its flags in bit order.
    mine = """query($s: ID!, $c: ID!) { server(id: $s) { myPermissions myPermissionFlags }
      channel(id: $c) { myPermissions myPermissionFlags } }"""
    await overwrite(as_owner, general["id"], "MEMBER", bob.user_id, deny="2048")  # no Send Messages here
    seen = await as_bob.data(mine, {"s": server["id"], "c": general["id"]})
    member_flags = [
        "CREATE_INVITE",
        "ADD_REACTIONS",
        "STREAM",
        "VIEW_CHANNEL",
        "SEND_MESSAGES",
        "EMBED_LINKS",
        "ATTACH_FILES",
        "READ_MESSAGE_HISTORY",
        "CONNECT",
        "SPEAK",
        "CHANGE_NICKNAME",
    ]
    assert seen["server"] == {"myPermissions": "70372929", "myPermissionFlags": member_flags}
    assert seen["channel"] == {
        "myPermissions": str(70372929 - 2048),
        "myPermissionFlags": [f for f in member_flags if f != "SEND_MESSAGES"],
    }
    overwrites = await as_owner.data(
        "query($c: ID!) { channel(id: $c) { overwrites { allow allowFlags deny denyFlags } } }",
        {"c": general["id"]},
    )
    assert overwrites["channel"]["overwrites"] == [
        {"allow": "0", "allowFlags": [], "deny": "2048", "denyFlags": ["SEND_MESSAGES"]}
    ]
    # Someone outside the server holds nothing.
    outsider = anonymous.with_token((await sign_up(anonymous, "out")).token)
    assert (await outsider.data(mine, {"s": server["id"], "c": general["id"]}))["server"] == {
        "myPermissions": "0",
        "myPermissionFlags": [],
    }
