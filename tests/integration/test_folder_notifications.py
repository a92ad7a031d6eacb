"""Folder notification settings through the router, on both stacks: a folder's level and snooze apply to
the channels in it (as muting a category does on Discord) unless a channel has its own; the folder is
read when the worker handles a message, so a channel moved out stops following it at once. To prove
something was *not* notified, a later message in the same server (same shard, handled in order) that
does notify the user is waited for (`until_listed`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import Users, create_channel, create_server, outcome, send, subscribe_settled
from tests.integration.notification_flows import (
    DELETE_CHANNEL,
    LIVE,
    SET,
    SETTINGS,
    SNOOZE,
    VISIBILITY,
    community,
    live_next,
    set_level,
    snooze,
    summary,
    until_listed,
)

MOVE = """mutation($i: MoveChannelInput!) { moveChannel(input: $i) { __typename } }"""


async def folder_with(client: GraphQLClient, server_id: str, *names: str) -> tuple[str, list[str]]:
    """A folder with these channels in it: (folder id, channel ids)."""
    folder = (await create_channel(client, server_id, "Folder", kind="FOLDER"))["id"]
    inside = [(await create_channel(client, server_id, name, parentId=folder))["id"] for name in names]
    return folder, inside


async def move(client: GraphQLClient, channel_id: str, folder_id: str | None) -> None:
    moved = await client.data(MOVE, {"i": {"id": channel_id, "parentId": folder_id, "position": 0}})
    assert moved["moveChannel"]["__typename"] == "Channel", moved


def channel_levels(settings: dict[str, Any]) -> dict[str, tuple[str | None, str]]:
    """Each listed channel or folder as (its own level, the effective one)."""
    (server,) = settings["servers"]
    return {c["channelId"]: (c["level"], c["effectiveLevel"]) for c in server["channels"]}


async def test_a_muted_folder_silences_its_channels_unless_a_channel_overrides(stack: Stack) -> None:
    server, general, people = await community(stack, "bob")
    _owner, as_owner = people["owner"]
    bob, as_bob = people["bob"]
    folder, (muted, overridden) = await folder_with(as_owner, server["id"], "muted", "overridden")
    await set_level(as_bob, "NOTHING", channelId=folder)
    await set_level(as_bob, "MENTIONS_ONLY", channelId=overridden)  # this channel's own choice

    await send(as_owner, muted, f"@{bob.username} in the muted folder")
    await send(as_owner, muted, "@everyone in the muted folder")
    await send(as_owner, overridden, f"@{bob.username} where the channel overrides")
    sentinel = await send(as_owner, general, f"last for @{bob.username}")
    found = await until_listed(as_bob, sentinel["id"])
    assert summary(found) == [
        ("MENTION", "HIGH", f"<@{bob.user_id}> where the channel overrides"),
        ("MENTION", "HIGH", f"last for <@{bob.user_id}>"),
    ]
    assert [n["channelId"] for n in found] == [general, overridden]


async def test_a_followed_folder_reaches_its_channels_until_one_moves_out(stack: Stack) -> None:
    server, general, people = await community(stack, "carol")
    _owner, as_owner = people["owner"]
    carol, as_carol = people["carol"]
    folder, (moving, staying) = await folder_with(as_owner, server["id"], "moving", "staying")
    await set_level(as_carol, "ALL_MESSAGES", channelId=folder)

    await send(as_owner, moving, "plain, in the folder")
    await send(as_owner, general, "plain, outside any folder")
    first = await send(as_owner, general, f"first for @{carol.username}")
    assert summary(await until_listed(as_carol, first["id"])) == [
        ("MESSAGE", "LOW", "plain, in the folder"),
        ("MENTION", "HIGH", f"first for <@{carol.user_id}>"),
    ]

    await move(as_owner, moving, None)  # out of the folder: no longer followed
    await send(as_owner, moving, "plain, moved out")
    await send(as_owner, staying, "plain, still in the folder")
    second = await send(as_owner, general, f"second for @{carol.username}")
    # The worker reads the folder when it handles a message, so the move back waits until the messages
    # sent while the channel was out have been handled (the worker may gather events for a moment).
    await until_listed(as_carol, second["id"])
    await move(as_owner, moving, folder)  # back in: followed again
    await send(as_owner, moving, "plain, back in")
    third = await send(as_owner, general, f"third for @{carol.username}")
    assert summary(await until_listed(as_carol, third["id"]))[2:] == [
        ("MESSAGE", "LOW", "plain, still in the folder"),
        ("MENTION", "HIGH", f"second for <@{carol.user_id}>"),
        ("MESSAGE", "LOW", "plain, back in"),
        ("MENTION", "HIGH", f"third for <@{carol.user_id}>"),
    ]


async def test_settings_show_a_folder_level_as_its_channels_effective_one(stack: Stack) -> None:
    server, general, people = await community(stack, "bob")
    _owner, as_owner = people["owner"]
    _bob, as_bob = people["bob"]
    folder, (snoozed, own) = await folder_with(as_owner, server["id"], "snoozed", "own")
    later = datetime.now(UTC) + timedelta(hours=1)
    await set_level(as_bob, "ALL_MESSAGES", serverId=server["id"])
    await set_level(as_bob, "NOTHING", channelId=folder)
    await snooze(as_bob, later, channelId=snoozed)  # listed, with no level of its own
    await set_level(as_bob, "MENTIONS_ONLY", channelId=own)
    settings = await snooze(as_bob, later, channelId=general)  # outside the folder
    assert settings["servers"][0]["effectiveLevel"] == "ALL_MESSAGES"
    assert channel_levels(settings) == {
        folder: ("NOTHING", "NOTHING"),  # the folder itself, with its level
        snoozed: (None, "NOTHING"),  # the folder's
        own: ("MENTIONS_ONLY", "MENTIONS_ONLY"),  # its own wins
        general: (None, "ALL_MESSAGES"),  # the server's
    }
    folder_entry = next(c for c in settings["servers"][0]["channels"] if c["channelId"] == folder)
    assert folder_entry["snoozedUntil"] is None

    await move(as_owner, snoozed, None)  # out of the folder: the server's again, at once
    moved = (await as_bob.data(SETTINGS))["notificationSettings"]
    assert channel_levels(moved)[snoozed] == (None, "ALL_MESSAGES")
    await move(as_owner, snoozed, folder)
    back = (await as_bob.data(SETTINGS))["notificationSettings"]
    assert channel_levels(back)[snoozed] == (None, "NOTHING")
    # A channel bob can no longer view does not tell him where it is: the server's level shows.
    await as_owner.data(VISIBILITY, {"i": {"channelId": snoozed, "private": True}})
    hidden = (await as_bob.data(SETTINGS))["notificationSettings"]
    assert channel_levels(hidden)[snoozed] == (None, "ALL_MESSAGES")
    settings = await set_level(as_bob, None, channelId=folder)  # the folder inherits again
    assert channel_levels(settings) == {
        snoozed: (None, "ALL_MESSAGES"),
        own: ("MENTIONS_ONLY", "MENTIONS_ONLY"),
        general: (None, "ALL_MESSAGES"),
    }

    # A deleted folder takes its setting and snooze along (and its channels theirs).
    await set_level(as_bob, "NOTHING", channelId=folder)
    await snooze(as_bob, later, channelId=folder)
    deleted = await as_owner.data(DELETE_CHANNEL, {"id": folder})
    assert deleted["deleteChannel"]["__typename"] == "ChannelDeleted", deleted
    sentinel = await send(as_owner, general, "after the deletion")  # bob follows the server
    await until_listed(as_bob, sentinel["id"])  # the consumer handled the deletions before it
    left = (await as_bob.data(SETTINGS))["notificationSettings"]
    assert channel_levels(left) == {general: (None, "ALL_MESSAGES")}


async def test_a_folder_one_cannot_view_is_not_found(stack: Stack) -> None:
    server, _general, people = await community(stack, "bob")
    _owner, as_owner = people["owner"]
    _bob, as_bob = people["bob"]
    _stranger, as_stranger = await Users(stack).new("stranger")
    secret, _inside = await folder_with(as_owner, server["id"], "inside")
    await as_owner.data(VISIBILITY, {"i": {"channelId": secret, "private": True}})
    visible, _ = await folder_with(as_owner, server["id"])
    elsewhere = await create_server(as_owner, "Elsewhere", "PUBLIC")
    not_found = ("NotFoundError", "NOT_FOUND", "channelId")

    async def set_outcome(client: GraphQLClient, **i: Any) -> tuple[str, str | None, str | None]:
        return outcome((await client.data(SET, {"i": i}))["setNotificationSetting"])

    async def snooze_outcome(client: GraphQLClient, **i: Any) -> tuple[str, str | None, str | None]:
        until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        return outcome((await client.data(SNOOZE, {"i": {"until": until, **i}}))["snoozeNotifications"])

    assert await set_outcome(as_bob, channelId=secret, level="NOTHING") == not_found
    assert await snooze_outcome(as_bob, channelId=secret) == not_found
    assert await set_outcome(as_stranger, channelId=visible, level="NOTHING") == not_found
    assert await snooze_outcome(as_stranger, channelId=visible) == not_found
    mismatched = {"serverId": elsewhere["id"], "channelId": visible}
    assert await set_outcome(as_bob, **mismatched, level="NOTHING") == not_found
    assert await snooze_outcome(as_bob, **mismatched) == not_found
    assert (await as_bob.data(SETTINGS))["notificationSettings"]["servers"] == []
    # The owner sees the private folder; bob the other one.
    assert (await set_outcome(as_owner, channelId=secret, level="NOTHING"))[0] == "NotificationSettings"
    assert (await set_outcome(as_bob, channelId=visible, level="NOTHING"))[0] == "NotificationSettings"


async def test_a_folder_snooze_stores_without_pushing(stack: Stack) -> None:
    server, general, people = await community(stack, "carol")
    _owner, as_owner = people["owner"]
    carol, as_carol = people["carol"]
    folder, (inside,) = await folder_with(as_owner, server["id"], "inside")
    async with as_carol.subscriptions() as connection:
        live = await subscribe_settled(connection, LIVE, {})
        settings = await snooze(as_carol, datetime.now(UTC) + timedelta(hours=1), channelId=folder)
        (entry,) = settings["servers"][0]["channels"]
        assert (entry["channelId"], entry["level"]) == (folder, None)
        assert entry["snoozedUntil"] is not None
        held = await send(as_owner, inside, f"@{carol.username} in the snoozed folder")
        outside = await send(as_owner, general, f"@{carol.username} outside it")
        assert (await live_next(live))["messageId"] == outside["id"]  # the held one was not pushed
        assert {n["messageId"] for n in await until_listed(as_carol, outside["id"])} == {
            held["id"],
            outside["id"],
        }
        await snooze(as_carol, None, channelId=folder)
        loud = await send(as_owner, inside, f"@{carol.username} after the snooze")
        assert (await live_next(live))["messageId"] == loud["id"]
        await live.expect_nothing(within=0.5)
