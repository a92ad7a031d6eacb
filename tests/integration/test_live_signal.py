"""The live signal (docs/live-signal.md): a client that asks for it gets one result `{"extensions":
{"live": true}}` once live delivery is established, and an event published right after it is delivered,
every time (each test repeats the race ROUNDS times). Through the fan-out tier: a socket that starts a
shared stream, sockets that join a live one, a stream rendered for one viewer; and without the tier (a
router with BEEP_FANOUT=0 executes each subscription for its client alone). A client that does not ask
receives what it always did."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.harness.client import GraphQLClient, Operation, SubscriptionConnection
from tests.harness.relayed import wait_relayed
from tests.harness.stack import Stack, start_embedded
from tests.integration.flows import create_channel, create_server, send, sign_up
from tests.integration.message_flows import guild, streams_opened

ROUNDS = 12
UPDATE_SERVER = "mutation($i: UpdateServerInput!) { updateServer(input: $i) { __typename } }"
# Typing is published on the bus by the mutation itself (not stored, no relay in between): the fastest
# event there is, so the closest race with a subscription that is not live yet.
TYPING = "mutation($c: ID!) { startTyping(channelId: $c) { __typename } }"


def events(alias: str) -> str:
    """messageEvents under `alias`: another alias is another operation, hence a shared stream of its own."""
    return f"""subscription($c: ID!) {{ {alias}: messageEvents(channelId: $c) {{
      __typename ... on MessageCreated {{ message {{ id }} }} ... on TypingEvent {{ user {{ id }} }} }} }}"""


async def first_event(operation: Operation, alias: str) -> dict[str, Any]:
    message = await operation.next(timeout=20)
    assert message["type"] == "next" and "data" in message["payload"], message
    event: dict[str, Any] = message["payload"]["data"][alias]
    return event


async def created_id(operation: Operation, alias: str) -> str:
    event = await first_event(operation, alias)
    assert event["__typename"] == "MessageCreated", event
    return str(event["message"]["id"])


async def typing_reaches(typist: GraphQLClient, channel: str, *operations: tuple[Operation, str]) -> None:
    """`typist` starts typing at once: each (operation, alias) receives it as its next event."""
    assert (await typist.data(TYPING, {"c": channel}))["startTyping"]["__typename"] == "Typing"
    for operation, alias in operations:
        assert (await first_event(operation, alias))["__typename"] == "TypingEvent"


async def live(connection: SubscriptionConnection, query: str, variables: dict[str, str]) -> Operation:
    operation = await connection.subscribe(query, variables, live_signal=True)
    assert await operation.live(), await operation.next()
    return operation


async def test_a_socket_starting_a_shared_stream_is_live_once_its_upstream_is(stack: Stack) -> None:
    owner, [(_account, member)], _server, channel = await guild(stack, 1)
    opened = streams_opened(stack)
    async with member.subscriptions() as connection:
        for n in range(ROUNDS):
            alias = f"round{n}"
            operation = await live(connection, events(alias), {"c": channel})
            await typing_reaches(owner, channel, (operation, alias))
            sent = await send(owner, channel, f"right after the signal {n}")
            assert await created_id(operation, alias) == sent["id"]
            await operation.expect_nothing(within=0)  # one signal, once
            await operation.stop()
    assert streams_opened(stack) - opened == ROUNDS  # each round started a shared stream of its own


async def test_sockets_joining_a_live_shared_stream_are_live_at_once(stack: Stack) -> None:
    owner, [(_a, first), (_b, second)], _server, channel = await guild(stack, 2)
    query = events("e")
    async with first.subscriptions() as keeping, second.subscriptions() as joining:
        keeper = await live(keeping, query, {"c": channel})
        opened = streams_opened(stack)
        for _ in range(ROUNDS):
            joiner = await live(joining, query, {"c": channel})
            await typing_reaches(owner, channel, (joiner, "e"), (keeper, "e"))
            await joiner.stop()
        assert streams_opened(stack) == opened  # every joiner read the keeper's stream


async def test_a_stream_rendered_for_one_viewer_signals_too(embedded_stack: Stack) -> None:
    """serverEvents is viewer-dependent: the tier runs a stream per user, started by its first socket."""
    client = GraphQLClient(embedded_stack.router_url)
    owner = client.with_token((await sign_up(client, "liveown")).token)
    server = await create_server(owner, "Live", "PUBLIC")
    await wait_relayed(embedded_stack)  # the server's creation is not the event awaited below
    async with owner.subscriptions() as connection:
        for n in range(ROUNDS):
            alias = f"round{n}"
            query = f"subscription($s: ID!) {{ {alias}: serverEvents(serverId: $s) {{ __typename }} }}"
            operation = await live(connection, query, {"s": server["id"]})
            await owner.data(UPDATE_SERVER, {"i": {"serverId": server["id"], "name": f"Live {n}"}})
            assert (await first_event(operation, alias))["__typename"] == "ServerUpdatedEvent"
            await operation.stop()


async def test_a_client_that_does_not_ask_receives_what_it_always_did(stack: Stack) -> None:
    owner, [(_account, member)], _server, channel = await guild(stack, 1)
    async with member.subscriptions() as connection:
        plain = await connection.subscribe(events("e"), {"c": channel})
        await live(connection, events("e"), {"c": channel})  # the same stream: live once this is
        sent = await send(owner, channel, "no signal for you")
        assert await created_id(plain, "e") == sent["id"]  # the first thing it receives


async def sse_results(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    async for line in response.aiter_lines():
        if line.startswith("data:") and line[5:].strip():
            yield json.loads(line[5:])


async def test_over_sse_the_signal_is_the_first_result(embedded_stack: Stack) -> None:
    """An HTTP subscription (Server-Sent Events, as the Laboratory runs them) asks in its body."""
    owner, [(account, _member)], _server, channel = await guild(embedded_stack, 1)
    body = {"query": events("e"), "variables": {"c": channel}, "extensions": {"liveSignal": True}}
    headers = {"accept": "text/event-stream", "authorization": f"Bearer {account.token}"}
    async with (
        httpx.AsyncClient(timeout=20) as http,
        http.stream("POST", embedded_stack.router_url, json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        results = sse_results(response)
        assert await anext(results) == {"extensions": {"live": True}}
        sent = await send(owner, channel, "over SSE")
        assert (await anext(results))["data"]["e"]["message"]["id"] == sent["id"]


@pytest.fixture(scope="module")
def unshared_stack() -> Iterator[Stack]:
    """A router without the fan-out tier: each subscription is executed for its client alone."""
    stack = start_embedded({"BEEP_FANOUT": "0"})
    yield stack
    stack.stop()


async def test_an_unshared_subscription_is_live_once_its_subgraph_is(unshared_stack: Stack) -> None:
    client = GraphQLClient(unshared_stack.router_url)
    owner = client.with_token((await sign_up(client, "loneowner")).token)
    server = await create_server(owner, "Alone", "PUBLIC")
    channel = (await create_channel(owner, server["id"], "solo"))["id"]
    async with owner.subscriptions() as connection:
        plain = await connection.subscribe(events("e"), {"c": channel})
        sent = []
        for n in range(ROUNDS):
            operation = await live(connection, events("e"), {"c": channel})
            await typing_reaches(owner, channel, (operation, "e"))
            sent.append((await send(owner, channel, f"unshared {n}"))["id"])
            assert await created_id(operation, "e") == sent[-1]
            await operation.stop()
        # Not asked, no signal: only events (from whichever round this one was live by, to the last).
        received: list[dict[str, Any]] = []
        while not received or received[-1].get("message", {}).get("id") != sent[-1]:
            received.append(await first_event(plain, "e"))
        assert {e["__typename"] for e in received} <= {"TypingEvent", "MessageCreated"}
    assert streams_opened(unshared_stack) == 0
