"""Managing channels through the router: rename and topic, reorder and move between folders, delete (a
folder takes its channels and their messages), and private channels from setChannelVisibility."""

from __future__ import annotations

import asyncio

from subgraphs.kernel.tenancy.permissions import Permission
from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import (
    DELETE_CHANNEL,
    JOIN_SERVER,
    MOVE_CHANNEL,
    SEND_MESSAGE,
    SET_VISIBILITY,
    UPDATE_CHANNEL,
    Account,
    create_channel,
    create_empty_server,
    create_server,
    default_channel,
    mutate,
    send,
    sign_up,
)
from tests.integration.role_flows import ASSIGN_ROLE, CREATE_ROLE, VIEW, bits, overwrite, role

LAYOUT = """query($s: ID!) { server(id: $s) { channels { name position parent { name } } } }"""


async def layout(client: GraphQLClient, server_id: str) -> list[tuple[str, int, str | None]]:
    """The sidebar: (name, position, folder name) in display order."""
    data = await client.data(LAYOUT, {"s": server_id})
    return [
        (c["name"], c["position"], c["parent"]["name"] if c["parent"] else None)
        for c in data["server"]["channels"]
    ]


async def member(anonymous: GraphQLClient, server_id: str, prefix: str) -> tuple[Account, GraphQLClient]:
    account = await sign_up(anonymous, prefix)
    client = anonymous.with_token(account.token)
    assert (await client.data(JOIN_SERVER, {"id": server_id}))["joinServer"]["__typename"] == "Server"
    return account, client


async def give_channel_managers_role(as_owner: GraphQLClient, server_id: str, user: Account) -> None:
    managers = await role(
        as_owner,
        CREATE_ROLE,
        serverId=server_id,
        name="Managers",
        permissions=bits(Permission.MANAGE_CHANNELS),
    )
    await role(as_owner, ASSIGN_ROLE, roleId=managers["id"], userId=user.user_id)


async def test_rename_and_topic_with_validation_and_permissions(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    owner = await sign_up(anonymous, "own")
    as_owner = anonymous.with_token(owner.token)
    server = await create_server(as_owner, "Renames")
    general = await default_channel(as_owner, server["id"])  # a new server's first channel
    folder = await create_channel(as_owner, server["id"], "Folder", kind="FOLDER")
    bob, as_bob = await member(anonymous, server["id"], "bob")
    as_eve = anonymous.with_token((await sign_up(anonymous, "eve")).token)

    # Given a manager, when they rename and set a topic, then the text is kept but trimmed.
    renamed = await mutate(
        as_owner, UPDATE_CHANNEL, id=general["id"], name="  Lobby Café  ", topic=" Say hi\n "
    )
    assert renamed == {
        "__typename": "Channel",
        "id": general["id"],
        "name": "Lobby Café",
        "topic": "Say hi",
        "position": 0,
        "permissionsSynced": True,
        "parent": None,
    }
    read = await as_bob.data("query($c: ID!) { channel(id: $c) { name topic } }", {"c": general["id"]})
    assert read["channel"] == {"name": "Lobby Café", "topic": "Say hi"}
    topic_only = await mutate(as_owner, UPDATE_CHANNEL, id=general["id"], topic="Rules:\n1. be kind")
    assert (topic_only["name"], topic_only["topic"]) == ("Lobby Café", "Rules:\n1. be kind")  # name unchanged
    cleared = await mutate(as_owner, UPDATE_CHANNEL, id=general["id"], topic="")
    assert (cleared["name"], cleared["topic"]) == ("Lobby Café", None)

    # Broken rules, each with its code and field.
    for changes, code, field in [
        ({"name": "   "}, "REQUIRED", "name"),
        ({"name": "x" * 101}, "TOO_LONG", "name"),
        ({"name": "bell\x07"}, "INVALID_FORMAT", "name"),
        ({"topic": "t" * 1025}, "TOO_LONG", "topic"),
        ({"topic": "esc\x1b[31m"}, "INVALID_FORMAT", "topic"),
        ({"id": "not-an-id", "name": "x"}, "INVALID_ID", "id"),
    ]:
        refused = await mutate(as_owner, UPDATE_CHANNEL, **{"id": general["id"], **changes})
        assert (refused["__typename"], refused["code"], refused["field"]) == ("ValidationError", code, field)
    folder_topic = await mutate(as_owner, UPDATE_CHANNEL, id=folder["id"], topic="no")
    assert (folder_topic["__typename"], folder_topic["field"]) == ("ValidationError", "topic")
    assert (await mutate(as_owner, UPDATE_CHANNEL, id=general["id"], name="x" * 100))["name"] == "x" * 100

    # A member without Manage Channels may not; an outsider and a member who cannot see it get "not found".
    assert (await mutate(as_bob, UPDATE_CHANNEL, id=general["id"], name="mine"))[
        "__typename"
    ] == "PermissionError"
    assert (await mutate(as_eve, UPDATE_CHANNEL, id=general["id"], name="mine"))[
        "__typename"
    ] == "NotFoundError"
    await overwrite(as_owner, general["id"], "MEMBER", bob.user_id, deny=VIEW)
    hidden = await mutate(as_bob, UPDATE_CHANNEL, id=general["id"], name="mine")
    assert (hidden["__typename"], hidden["field"]) == ("NotFoundError", "id")

    # With a role granting Manage Channels, Bob may rename the channels he can see.
    await give_channel_managers_role(as_owner, server["id"], bob)
    assert (await mutate(as_bob, UPDATE_CHANNEL, id=folder["id"], name="Bob's"))["name"] == "Bob's"
    assert (await mutate(as_bob, UPDATE_CHANNEL, id=general["id"], name="x"))["__typename"] == "NotFoundError"


async def test_reorder_and_move_between_folders(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    owner = await sign_up(anonymous, "own")
    as_owner = anonymous.with_token(owner.token)
    server = await create_empty_server(as_owner, "Layout")
    a, b, c = [await create_channel(as_owner, server["id"], name) for name in ("a", "b", "c")]
    f1 = await create_channel(as_owner, server["id"], "F1", kind="FOLDER")
    f2 = await create_channel(as_owner, server["id"], "F2", kind="FOLDER")
    assert await layout(as_owner, server["id"]) == [
        ("a", 0, None),
        ("b", 1, None),
        ("c", 2, None),
        ("F1", 3, None),
        ("F2", 4, None),
    ]

    # Reorder within the top level.
    moved = await mutate(as_owner, MOVE_CHANNEL, id=c["id"], position=0)
    assert (moved["__typename"], moved["position"]) == ("Channel", 0)
    assert [n for n, _, _ in await layout(as_owner, server["id"])] == ["c", "a", "b", "F1", "F2"]

    # Into folders, then from one folder to another, then reorder a folder.
    await mutate(as_owner, MOVE_CHANNEL, id=a["id"], parentId=f1["id"], position=0)
    into = await mutate(as_owner, MOVE_CHANNEL, id=b["id"], parentId=f1["id"], position=0)
    assert (into["parent"], into["position"]) == ({"name": "F1"}, 0)
    assert await layout(as_owner, server["id"]) == [
        ("c", 0, None),
        ("F1", 1, None),
        ("b", 0, "F1"),
        ("a", 1, "F1"),
        ("F2", 2, None),
    ]
    await mutate(as_owner, MOVE_CHANNEL, id=a["id"], parentId=f2["id"], position=0)
    await mutate(as_owner, MOVE_CHANNEL, id=f2["id"], position=0)
    assert await layout(as_owner, server["id"]) == [
        ("F2", 0, None),
        ("a", 0, "F2"),
        ("c", 1, None),
        ("F1", 2, None),
        ("b", 0, "F1"),
    ]
    children = await as_owner.data(
        "query($f: ID!) { channel(id: $f) { children { name position } } }", {"f": f2["id"]}
    )
    assert children["channel"]["children"] == [{"name": "a", "position": 0}]
    out = await mutate(as_owner, MOVE_CHANNEL, id=b["id"], position=3)  # out of F1, last at the top level
    assert (out["parent"], out["position"]) == (None, 3)
    assert await layout(as_owner, server["id"]) == [
        ("F2", 0, None),
        ("a", 0, "F2"),
        ("c", 1, None),
        ("F1", 2, None),
        ("b", 3, None),
    ]

    # Refused: a folder in a folder, a channel as a parent, another server's folder, positions out of range.
    nested = await mutate(as_owner, MOVE_CHANNEL, id=f1["id"], parentId=f2["id"], position=0)
    assert (nested["__typename"], nested["code"], nested["field"]) == (
        "ValidationError",
        "INVALID_PARENT",
        "parentId",
    )
    not_folder = await mutate(as_owner, MOVE_CHANNEL, id=b["id"], parentId=c["id"], position=0)
    assert (not_folder["code"], not_folder["field"]) == ("INVALID_PARENT", "parentId")
    other = await create_server(as_owner, "Other")
    foreign = await create_channel(as_owner, other["id"], "Theirs", kind="FOLDER")
    across = await mutate(as_owner, MOVE_CHANNEL, id=b["id"], parentId=foreign["id"], position=0)
    assert (across["code"], across["field"]) == ("INVALID_PARENT", "parentId")
    for position in (-1, 5):
        refused = await mutate(as_owner, MOVE_CHANNEL, id=b["id"], position=position)
        assert (refused["__typename"], refused["field"]) == ("ValidationError", "position"), position
    assert [p for _, p, parent in await layout(as_owner, server["id"]) if parent is None] == [0, 1, 2, 3]


async def test_moving_in_and_out_of_a_private_folder(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    owner = await sign_up(anonymous, "own")
    as_owner = anonymous.with_token(owner.token)
    server = await create_empty_server(as_owner, "Sync")
    staff = await create_channel(as_owner, server["id"], "Staff", kind="FOLDER")
    plain = await create_channel(as_owner, server["id"], "plain")
    tuned = await create_channel(as_owner, server["id"], "tuned")
    bob, as_bob = await member(anonymous, server["id"], "bob")
    await overwrite(as_owner, staff["id"], "ROLE", server["id"], deny=VIEW)
    await overwrite(as_owner, tuned["id"], "MEMBER", bob.user_id, deny=bits(Permission.SEND_MESSAGES))

    # In: a channel without overwrites of its own follows the folder; one with its own keeps them.
    synced = await mutate(as_owner, MOVE_CHANNEL, id=plain["id"], parentId=staff["id"], position=0)
    assert synced["permissionsSynced"] is True
    own = await mutate(as_owner, MOVE_CHANNEL, id=tuned["id"], parentId=staff["id"], position=1)
    assert own["permissionsSynced"] is False
    see = "query($s: ID!) { server(id: $s) { channels { name } } }"
    assert (await as_bob.data(see, {"s": server["id"]}))["server"]["channels"] == [{"name": "tuned"}]

    # Out: the synced channel keeps what applied to it (a copy of the folder's overwrites): still hidden.
    await mutate(as_owner, MOVE_CHANNEL, id=plain["id"], position=0)
    assert (await as_bob.data(see, {"s": server["id"]}))["server"]["channels"] == [{"name": "tuned"}]
    listing = await as_owner.data(
        "query($c: ID!) { channel(id: $c) { permissionsSynced overwrites { targetId deny } } }",
        {"c": plain["id"]},
    )
    assert listing["channel"] == {
        "permissionsSynced": False,
        "overwrites": [{"targetId": server["id"], "deny": VIEW}],
    }


async def test_deleting_a_folder_deletes_its_channels_and_messages(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    owner = await sign_up(anonymous, "own")
    as_owner = anonymous.with_token(owner.token)
    server = await create_empty_server(as_owner, "Deletes")
    first = await create_channel(as_owner, server["id"], "first")
    folder = await create_channel(as_owner, server["id"], "Old", kind="FOLDER")
    inside = [await create_channel(as_owner, server["id"], n, parentId=folder["id"]) for n in ("x", "y")]
    await create_channel(as_owner, server["id"], "last")
    messages = [await send(as_owner, channel["id"], f"in {channel['name']}") for channel in inside]
    _bob, as_bob = await member(anonymous, server["id"], "bob")
    as_eve = anonymous.with_token((await sign_up(anonymous, "eve")).token)

    assert (await as_bob.data(DELETE_CHANNEL, {"id": folder["id"]}))["deleteChannel"]["__typename"] == (
        "PermissionError"
    )
    refused = (await as_eve.data(DELETE_CHANNEL, {"id": folder["id"]}))["deleteChannel"]
    assert (refused["__typename"], refused["field"]) == ("NotFoundError", "id")

    deleted = (await as_owner.data(DELETE_CHANNEL, {"id": folder["id"]}))["deleteChannel"]
    assert deleted == {
        "__typename": "ChannelDeleted",
        "channelId": folder["id"],
        "serverId": server["id"],
        "childIds": [c["id"] for c in inside],
    }
    assert await layout(as_owner, server["id"]) == [("first", 0, None), ("last", 1, None)]
    for channel, message in zip(inside, messages, strict=True):
        gone = await as_owner.data(
            "query($c: ID!, $m: ID!) { channel(id: $c) { id } messages(channelId: $c) { edges { cursor } }"
            " message(id: $m) { id } }",
            {"c": channel["id"], "m": message["id"]},
        )
        assert gone == {"channel": None, "messages": None, "message": None}
        sent = await as_owner.data(
            SEND_MESSAGE, {"input": {"channelId": channel["id"], "content": "anyone?"}}
        )
        assert sent["sendMessage"]["__typename"] == "NotFoundError"
    again = (await as_owner.data(DELETE_CHANNEL, {"id": folder["id"]}))["deleteChannel"]
    assert again["__typename"] == "NotFoundError"

    # A plain channel goes alone; the others close the gap.
    alone = (await as_owner.data(DELETE_CHANNEL, {"id": first["id"]}))["deleteChannel"]
    assert (alone["channelId"], alone["childIds"]) == (first["id"], [])
    assert await layout(as_owner, server["id"]) == [("last", 0, None)]


async def test_a_folder_with_a_channel_you_cannot_manage_is_not_deleted(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    owner = await sign_up(anonymous, "own")
    as_owner = anonymous.with_token(owner.token)
    server = await create_empty_server(as_owner, "Guarded")
    folder = await create_channel(as_owner, server["id"], "Mixed", kind="FOLDER")
    secret = await create_channel(as_owner, server["id"], "secret", parentId=folder["id"])
    bob, as_bob = await member(anonymous, server["id"], "bob")
    await give_channel_managers_role(as_owner, server["id"], bob)
    await overwrite(as_owner, secret["id"], "MEMBER", bob.user_id, deny=VIEW)

    refused = (await as_bob.data(DELETE_CHANNEL, {"id": folder["id"]}))["deleteChannel"]
    assert (refused["__typename"], refused["field"]) == ("PermissionError", "id")
    assert [n for n, _, _ in await layout(as_owner, server["id"])] == ["Mixed", "secret"]


async def test_set_channel_visibility(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    owner = await sign_up(anonymous, "own")
    as_owner = anonymous.with_token(owner.token)
    server = await create_server(as_owner, "Private rooms")
    room = await create_channel(as_owner, server["id"], "room")
    bob, as_bob = await member(anonymous, server["id"], "bob")
    carol, as_carol = await member(anonymous, server["id"], "carol")
    _dave, as_dave = await member(anonymous, server["id"], "dave")
    crew = await role(as_owner, CREATE_ROLE, serverId=server["id"], name="Crew")
    await role(as_owner, ASSIGN_ROLE, roleId=crew["id"], userId=bob.user_id)
    see = "query($c: ID!, $s: ID!) { channel(id: $c) { name } server(id: $s) { channels { name } } }"

    async def sees(client: GraphQLClient) -> bool:
        data = await client.data(see, {"c": room["id"], "s": server["id"]})
        listed = {"name": "room"} in data["server"]["channels"]
        assert listed == (data["channel"] is not None)
        return listed

    # Private, for the Crew role and for Carol: Dave no longer sees it.
    private = await mutate(
        as_owner,
        SET_VISIBILITY,
        channelId=room["id"],
        private=True,
        roleIds=[crew["id"]],
        memberIds=[carol.user_id],
    )
    assert private["__typename"] == "Channel"
    assert [await sees(c) for c in (as_owner, as_bob, as_carol, as_dave)] == [True, True, True, False]
    listing = await as_owner.data(
        "query($c: ID!) { channel(id: $c) { overwrites { targetKind targetId allow deny } } }",
        {"c": room["id"]},
    )
    assert {
        (o["targetKind"], o["targetId"], o["allow"], o["deny"]) for o in listing["channel"]["overwrites"]
    } == {
        ("ROLE", server["id"], "0", VIEW),
        ("ROLE", crew["id"], VIEW, "0"),
        ("MEMBER", carol.user_id, VIEW, "0"),
    }
    hidden = await as_dave.data(SEND_MESSAGE, {"input": {"channelId": room["id"], "content": "hi"}})
    assert hidden["sendMessage"]["__typename"] == "NotFoundError"

    # Exactly who is given: Carol alone now, the Crew's allow is taken back.
    await mutate(as_owner, SET_VISIBILITY, channelId=room["id"], private=True, memberIds=[carol.user_id])
    assert [await sees(c) for c in (as_bob, as_carol, as_dave)] == [False, True, False]

    # Who may not, and input that makes no sense.
    not_manager = await mutate(as_carol, SET_VISIBILITY, channelId=room["id"], private=False)
    assert not_manager["__typename"] == "PermissionError"
    cannot_see = await mutate(as_dave, SET_VISIBILITY, channelId=room["id"], private=False)
    assert (cannot_see["__typename"], cannot_see["field"]) == ("NotFoundError", "channelId")
    everyone = await mutate(
        as_owner, SET_VISIBILITY, channelId=room["id"], private=True, roleIds=[server["id"]]
    )
    assert (everyone["__typename"], everyone["field"]) == ("ValidationError", "roleIds")
    public_with_list = await mutate(
        as_owner, SET_VISIBILITY, channelId=room["id"], private=False, roleIds=[crew["id"]]
    )
    assert (public_with_list["__typename"], public_with_list["field"]) == ("ValidationError", "roleIds")
    other = await create_server(as_owner, "Elsewhere")
    stranger = await mutate(
        as_owner, SET_VISIBILITY, channelId=room["id"], private=True, roleIds=[other["id"]]
    )
    assert (stranger["__typename"], stranger["field"]) == ("NotFoundError", "roleIds")
    outsider = await sign_up(anonymous, "out")
    not_member = await mutate(
        as_owner, SET_VISIBILITY, channelId=room["id"], private=True, memberIds=[outsider.user_id]
    )
    assert (not_member["__typename"], not_member["field"]) == ("NotFoundError", "memberIds")
    assert [await sees(c) for c in (as_bob, as_carol, as_dave)] == [False, True, False]  # nothing changed

    # Public again: everyone sees it.
    public = await mutate(as_owner, SET_VISIBILITY, channelId=room["id"], private=False)
    assert public["__typename"] == "Channel"
    assert [await sees(c) for c in (as_bob, as_carol, as_dave)] == [True, True, True]


async def test_concurrent_moves_leave_positions_dense(stack: Stack) -> None:
    anonymous = GraphQLClient(stack.router_url)
    owner = await sign_up(anonymous, "own")
    as_owner = anonymous.with_token(owner.token)
    server = await create_empty_server(as_owner, "Busy")
    folder = await create_channel(as_owner, server["id"], "Folder", kind="FOLDER")
    channels = [await create_channel(as_owner, server["id"], f"c{i}") for i in range(6)]

    # Two managers' clients at once: each move shifts its siblings' positions.
    results = await asyncio.gather(
        *(
            mutate(as_owner, MOVE_CHANNEL, id=c["id"], parentId=folder["id"] if i % 2 else None, position=0)
            for i, c in enumerate(channels)
        )
    )
    assert all(r["__typename"] == "Channel" for r in results), results
    placed = await layout(as_owner, server["id"])
    assert len(placed) == 7
    for parent in (None, "Folder"):
        group = sorted(p for _, p, in_folder in placed if in_folder == parent)
        assert group == list(range(len(group))), placed
    assert len([p for p in placed if p[2] == "Folder"]) == 3
