"""Resumable live delivery: `messageEvents(after:)` replays what a client missed from the outbox, then
follows live, with no gap and no repeat — during a burst of 1,000 messages, and across a crash of the
outbox relay (full mode: `beep worker` is killed with SIGKILL while messages are committed)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.harness.client import GraphQLClient, Operation
from tests.harness.stack import Stack
from tests.integration.flows import (
    Users,
    create_channel,
    create_server,
    send,
    stream_error_code,
    subscribe_settled,
)
from tests.integration.message_flows import DELETE

BURST = 1000
SENDERS = 4
EVENTS = """subscription($c: ID!, $after: String) { messageEvents(channelId: $c, after: $after) {
  __typename
  ... on MessageCreated { cursor message { id content } }
  ... on MessageUpdated { cursor message { id content } }
  ... on MessageDeleted { cursor messageId } } }"""
HEAD = "query($c: ID!) { messages(channelId: $c, first: 1) { eventCursor edges { node { id } } } }"
SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) { __typename ... on Message { id } } }"""
EDIT = """mutation($i: EditMessageInput!) { editMessage(input: $i) { __typename } }"""


def position(cursor: str) -> tuple[int, int]:
    store, _, pos = cursor.partition(":")
    return int(store), int(pos)


async def channel_of(stack: Stack) -> tuple[GraphQLClient, str]:
    _account, client = await Users(stack).new("burst")
    server = await create_server(client, "Resume", "PRIVATE")
    channel = await create_channel(client, server["id"], "firehose")
    return client, channel["id"]


async def head(client: GraphQLClient, channel: str) -> str:
    cursor = (await client.data(HEAD, {"c": channel}))["messages"]["eventCursor"]
    assert isinstance(cursor, str)
    return cursor


async def burst(
    client: GraphQLClient,
    channel: str,
    total: int,
    sent: list[str],
    hold: tuple[int, asyncio.Event] | None = None,
) -> None:
    """`total` messages from SENDERS concurrent loops, over kept-alive connections (like a busy client).
    `hold` = (n, gate): messages from the n-th on wait for the gate (the burst is still going when the
    test needs it to be, however slowly deliveries keep up on a loaded machine)."""
    headers = {"authorization": f"Bearer {client.token}"}

    async def sender(n: int) -> None:
        async with httpx.AsyncClient(timeout=60, headers=headers) as http:
            for i in range(n, total, SENDERS):
                if hold is not None and i >= hold[0]:
                    await hold[1].wait()
                body = {"query": SEND, "variables": {"i": {"channelId": channel, "content": f"m{i}"}}}
                response = (await http.post(client.url, json=body)).json()
                assert response["data"]["sendMessage"]["__typename"] == "Message", response
                sent.append(response["data"]["sendMessage"]["id"])

    await asyncio.gather(*(sender(n) for n in range(SENDERS)))


async def created(operation: Operation, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    received = []
    for _ in range(count):
        message = await operation.next(timeout)
        assert message["type"] == "next" and "errors" not in message["payload"], message
        received.append(message["payload"]["data"]["messageEvents"])
    return received


async def test_resume_during_a_burst_delivers_each_message_once_in_order(stack: Stack) -> None:
    client, channel = await channel_of(stack)
    start = await head(client, channel)
    sent: list[str] = []
    disconnected = asyncio.Event()  # the last 300 messages are sent once the first client has left
    sending = asyncio.create_task(burst(client, channel, BURST, sent, hold=(BURST - 300, disconnected)))
    try:
        async with client.subscriptions() as connection:
            first = await connection.subscribe(EVENTS, {"c": channel, "after": start})
            part_one = await created(first, 300)
        disconnected.set()
        # Disconnected mid-burst; come back while messages are still being sent.
        while len(sent) < 600 and not sending.done():
            await asyncio.sleep(0.05)
        assert not sending.done(), "the burst finished before the client came back: nothing tested live"
        async with client.subscriptions() as connection:
            second = await connection.subscribe(EVENTS, {"c": channel, "after": part_one[-1]["cursor"]})
            part_two = await created(second, BURST - len(part_one), timeout=120)
            await sending
            await second.expect_nothing(within=1.0)  # and nothing twice afterwards
    finally:
        sending.cancel()
    delivered = part_one + part_two
    ids = [event["message"]["id"] for event in delivered]
    assert len(ids) == len(set(ids)) == BURST
    assert set(ids) == set(sent)
    positions = [position(event["cursor"]) for event in delivered]
    assert positions == sorted(positions) and len(set(positions)) == BURST
    # Each sender's messages arrive in the order it sent them.
    for n in range(SENDERS):
        mine = [
            int(e["message"]["content"][1:])
            for e in delivered
            if int(e["message"]["content"][1:]) % SENDERS == n
        ]
        assert mine == sorted(mine)


async def test_edits_and_deletes_are_replayed_too(stack: Stack) -> None:
    client, channel = await channel_of(stack)
    start = await head(client, channel)
    message = await send(client, channel, "first draft")
    await client.data(EDIT, {"i": {"id": message["id"], "content": "second draft"}})
    await client.data(DELETE, {"id": message["id"]})
    async with client.subscriptions() as connection:
        operation = await connection.subscribe(EVENTS, {"c": channel, "after": start})
        events = await created(operation, 3)
    assert [e["__typename"] for e in events] == ["MessageCreated", "MessageUpdated", "MessageDeleted"]
    assert events[1]["message"]["content"] == "second draft"
    assert events[2]["messageId"] == message["id"]


async def test_a_cursor_that_is_not_ours_is_refused(stack: Stack) -> None:
    client, channel = await channel_of(stack)
    async with client.subscriptions() as connection:
        for bad in ("yesterday", "1:-4", "-9:1"):
            operation = await connection.subscribe(EVENTS, {"c": channel, "after": bad})
            assert stream_error_code(await operation.next()) == "BAD_USER_INPUT"


async def test_another_members_cursor_does_not_open_a_private_channel(stack: Stack) -> None:
    client, channel = await channel_of(stack)
    start = await head(client, channel)
    await send(client, channel, "members only")
    _outsider, as_outsider = await Users(stack).new("outsider")
    async with as_outsider.subscriptions() as connection:
        operation = await connection.subscribe(EVENTS, {"c": channel, "after": start})
        assert stream_error_code(await operation.next()) == "NOT_FOUND"


@pytest.mark.full
async def test_a_relay_crash_loses_nothing(full_stack: Stack) -> None:
    client, channel = await channel_of(full_stack)
    start = await head(client, channel)
    async with client.subscriptions() as connection:
        live = await subscribe_settled(connection, EVENTS, {"c": channel, "after": start})
        await send(client, channel, "before the crash")
        assert (await created(live, 1))[0]["message"]["content"] == "before the crash"

        full_stack.kill("worker")
        sent = [(await send(client, channel, f"while down {i}"))["id"] for i in range(20)]
        await live.expect_nothing(within=1.5)  # committed, but nobody relays: the outbox holds them
        full_stack.restart_worker()
        after_restart = await created(live, 20, timeout=30)
        await live.expect_nothing(within=1.0)
    assert [e["message"]["id"] for e in after_restart] == sent
    # A client that was away the whole time gets the same, from storage.
    async with client.subscriptions() as connection:
        resumed = await connection.subscribe(EVENTS, {"c": channel, "after": start})
        replayed = await created(resumed, 21)
    assert [e["message"]["id"] for e in replayed[1:]] == sent
