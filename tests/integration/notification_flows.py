"""Notification settings, snoozes and the notification stream as a client uses them, for the tests."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from tests.harness.client import GraphQLClient, Operation
from tests.harness.stack import Stack
from tests.integration.flows import JOIN_SERVER, Account, Users, create_channel, create_server

NOTIFICATIONS = """query($first: Int, $after: String, $unread: Boolean) {
  notifications(first: $first, after: $after, unreadOnly: $unread) {
    edges { cursor node { id kind level read serverId channelId messageId
      message { id content } actor { id username } channel { id } server { id } } }
    pageInfo { hasNextPage hasPreviousPage endCursor } } }"""


SETTINGS_FIELDS = """defaultLevel snoozedUntil servers { serverId level effectiveLevel snoozedUntil
  channels { channelId level effectiveLevel snoozedUntil } }"""


SET = f"""mutation($i: SetNotificationSettingInput!) {{ setNotificationSetting(input: $i) {{
  __typename ... on NotificationSettings {{ {SETTINGS_FIELDS} }} ... on UserError {{ code field }} }} }}"""


SNOOZE = f"""mutation($i: SnoozeNotificationsInput!) {{ snoozeNotifications(input: $i) {{
  __typename ... on NotificationSettings {{ {SETTINGS_FIELDS} }} ... on UserError {{ code field }} }} }}"""


SETTINGS = f"{{ notificationSettings {{ {SETTINGS_FIELDS} }} }}"


LIVE = """subscription { notifications { id kind level read messageId channelId
  message { id content } actor { username } } }"""


VISIBILITY = """mutation($i: SetChannelVisibilityInput!) { setChannelVisibility(input: $i) { __typename } }"""


DELETE_CHANNEL = "mutation($id: ID!) { deleteChannel(id: $id) { __typename } }"


async def listed(client: GraphQLClient, **variables: Any) -> list[dict[str, Any]]:
    data = await client.data(NOTIFICATIONS, {"first": 100, **variables})
    return [edge["node"] for edge in data["notifications"]["edges"]]


async def until_listed(
    client: GraphQLClient, message_id: str, *, timeout: float = 20
) -> list[dict[str, Any]]:
    """The user's notifications once the one of `message_id` is there (the consumer runs after commit)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await listed(client)
        if any(n["messageId"] == message_id for n in found):
            return found
        assert asyncio.get_running_loop().time() < deadline, f"no notification for {message_id}: {found}"
        await asyncio.sleep(0.2)


def summary(notifications: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(kind, level, message text), oldest first."""
    return [(n["kind"], n["level"], n["message"]["content"]) for n in reversed(notifications)]


async def live_next(operation: Operation, timeout: float = 20) -> dict[str, Any]:
    message = await operation.next(timeout)
    assert message["type"] == "next" and "errors" not in message["payload"], message
    return dict(message["payload"]["data"]["notifications"])


async def community(
    stack: Stack, *names: str
) -> tuple[dict[str, Any], str, dict[str, tuple[Account, GraphQLClient]]]:
    """A public server with a #general channel, its owner ("owner") and members joined under `names`."""
    users = Users(stack)
    people = {"owner": await users.new("owner")}
    server = await create_server(people["owner"][1], "Notified", "PUBLIC")
    channel = await create_channel(people["owner"][1], server["id"], "general")
    for name in names:
        people[name] = await users.new(name)
        joined = await people[name][1].data(JOIN_SERVER, {"id": server["id"]})
        assert joined["joinServer"]["__typename"] == "Server", joined
    return server, channel["id"], people


async def set_level(client: GraphQLClient, level: str | None, **scope: str) -> dict[str, Any]:
    result = (await client.data(SET, {"i": {**scope, "level": level}}))["setNotificationSetting"]
    assert result["__typename"] == "NotificationSettings", result
    return dict(result)


async def snooze(client: GraphQLClient, until: datetime | None, **scope: str) -> dict[str, Any]:
    value = until.isoformat() if until is not None else None
    result = (await client.data(SNOOZE, {"i": {**scope, "until": value}}))["snoozeNotifications"]
    assert result["__typename"] == "NotificationSettings", result
    return dict(result)
