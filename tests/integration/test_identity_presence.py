"""Presence follows live subscriptions: a member of a shared server sees a user connect and disconnect;
strangers see nothing; a process that dies takes its connections offline within the heartbeat expiry."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from subgraphs.kernel.events.bus import create_bus
from subgraphs.kernel.events.catalogue import PresenceChanged, topic_for_server
from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.integration.flows import (
    JOIN_SERVER,
    MESSAGE_EVENTS,
    Account,
    create_channel,
    create_server,
    sign_up,
    subscribe_settled,
)
from tests.integration.identity_helpers import UPDATE_PROFILE

PRESENCE = "query($id: ID!) { user(id: $id) { id status connectionStatus } }"


async def _presence(stack: Stack, viewer: Account, user_id: str) -> dict[str, Any]:
    data = await GraphQLClient(stack.router_url, viewer.token).data(PRESENCE, {"id": user_id})
    return dict(data["user"])


async def _eventually(stack: Stack, viewer: Account, user_id: str, expected: str, within: float) -> float:
    """Seconds until the viewer sees `expected` as the user's connection status."""
    began = time.monotonic()
    while True:
        seen = (await _presence(stack, viewer, user_id))["connectionStatus"]
        if seen == expected:
            return time.monotonic() - began
        assert time.monotonic() - began < within, f"still {seen} after {within}s"
        await asyncio.sleep(0.2)


async def _co_members(stack: Stack) -> tuple[Account, Account, str, str]:
    client = GraphQLClient(stack.router_url)
    owner, member = await sign_up(client, "owner"), await sign_up(client, "member")
    server = await create_server(client.with_token(owner.token))
    channel = await create_channel(client.with_token(owner.token), server["id"])
    joined = await client.with_token(member.token).data(JOIN_SERVER, {"id": server["id"]})
    assert joined["joinServer"]["__typename"] == "Server", joined
    return owner, member, server["id"], channel["id"]


async def test_connection_follows_subscriptions_and_is_seen_by_co_members_only(stack: Stack) -> None:
    owner, member, _server_id, channel_id = await _co_members(stack)
    stranger = await sign_up(GraphQLClient(stack.router_url), "stranger")
    assert await _presence(stack, owner, member.user_id) == {
        "id": member.user_id,
        "status": "ACTIVE",
        "connectionStatus": "DISCONNECTED",
    }
    async with GraphQLClient(stack.router_url, member.token).subscriptions() as connection:
        await connection.subscribe(MESSAGE_EVENTS, {"channelId": channel_id})
        await _eventually(stack, owner, member.user_id, "CONNECTED", within=10)
        assert (await _presence(stack, member, member.user_id))["connectionStatus"] == "CONNECTED"
        hidden = await _presence(stack, stranger, member.user_id)
        assert hidden["status"] is None and hidden["connectionStatus"] is None

        # MYSTERIOUS: others see them disconnected; they still see themself connected.
        me = GraphQLClient(stack.router_url, member.token)
        await me.data(UPDATE_PROFILE, {"input": {"status": "MYSTERIOUS"}})
        assert await _presence(stack, owner, member.user_id) == {
            "id": member.user_id,
            "status": "MYSTERIOUS",
            "connectionStatus": "DISCONNECTED",
        }
        assert (await _presence(stack, member, member.user_id))["connectionStatus"] == "CONNECTED"
        await me.data(UPDATE_PROFILE, {"input": {"status": "ACTIVE"}})
    await _eventually(stack, owner, member.user_id, "DISCONNECTED", within=10)


async def test_presence_changes_are_published_to_the_users_servers(full_stack: Stack) -> None:
    _owner, member, server_id, channel_id = await _co_members(full_stack)
    bus = create_bus(full_stack.env["BEEP_REDIS_URL"])
    try:
        async with bus.subscribe(topic_for_server(server_id)) as events:
            received: list[PresenceChanged] = []

            async def collect(count: int) -> None:
                async for event in events:
                    if isinstance(event, PresenceChanged) and event.user_id == int(member.user_id):
                        received.append(event)
                        if len(received) == count:
                            return

            async with GraphQLClient(full_stack.router_url, member.token).subscriptions() as connection:
                await connection.subscribe(MESSAGE_EVENTS, {"channelId": channel_id})
                await asyncio.wait_for(collect(1), 10)
            await asyncio.wait_for(collect(2), 10)
    finally:
        await bus.close()
    assert received == [
        PresenceChanged(int(member.user_id), True, "ACTIVE"),
        PresenceChanged(int(member.user_id), False, "ACTIVE"),
    ]


HOLD_CONNECTION = """
import asyncio, sys
from subgraphs.kernel.web.presence import PresenceSession, RedisPresence

async def main() -> None:
    async def announce(user_id: int, connected: bool) -> None:
        pass
    session = PresenceSession(RedisPresence(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), announce)
    await session.start()
    print("connected", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


MEMBER_EVENTS = """subscription($c: ID!) { channelMemberEvents(channelId: $c) {
  change user { id } connected } }"""


@pytest.mark.parametrize("ttl", [4.0])
async def test_a_process_that_dies_goes_offline_within_the_expiry(full_stack: Stack, ttl: float) -> None:
    """A process holding a user's connection is killed (no goodbye): the user reads as disconnected once
    the last heartbeat expires, and the worker's sweep announces it live to those who see the user (within
    a third of the worker's expiry after that). The expiry is the holder's (BEEP_PRESENCE_TTL_SECONDS,
    30 s by default); this one uses 4 s to keep the test short."""
    owner, member, _server_id, channel_id = await _co_members(full_stack)
    sweep_every = 30 / 3  # the stack's worker runs with the default expiry
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_CONNECTION, full_stack.env["BEEP_REDIS_URL"], member.user_id, str(ttl)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        async with GraphQLClient(full_stack.router_url, owner.token).subscriptions() as connection:
            stream = await subscribe_settled(connection, MEMBER_EVENTS, {"c": channel_id})
            assert holder.stdout is not None and holder.stdout.readline().strip() == b"connected"
            await _eventually(full_stack, owner, member.user_id, "CONNECTED", within=5)
            # Past several heartbeats it stays connected: the holder renews it.
            await asyncio.sleep(ttl * 1.5)
            assert (await _presence(full_stack, owner, member.user_id))["connectionStatus"] == "CONNECTED"
            os.kill(holder.pid, signal.SIGKILL)
            killed = time.monotonic()
            waited = await _eventually(full_stack, owner, member.user_id, "DISCONNECTED", within=ttl + 2)
            assert waited <= ttl + 2
            while True:  # the owner's own presence may come first
                message = await stream.next(timeout=ttl + sweep_every + 10)
                event = message["payload"]["data"]["channelMemberEvents"]
                if event["user"]["id"] == member.user_id:
                    break
            assert (event["change"], event["connected"]) == ("PRESENCE", False)
            assert time.monotonic() - killed <= ttl + sweep_every + 10
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()
