"""A message's trace, end to end (docs/tracing.md): a message sent through the router while a listener's
socket is open, every process's spans collected by the tests' trace receiver (tests/harness/traces.py),
and the trace asserted span by span.

The full stack is the suite's own (conftest.py's `full_stack` exports to the receiver, sampling nothing
unless a test sends a sampled `traceparent`): every subgraph, the worker and the routers are processes of
their own, so each span's resource names its process (`service.name`, `process.pid`). A second test runs
the embedded stack with the fan-out tier off (BEEP_FANOUT=0): every subscription is executed once per
subscriber, and its delivery must get the span a shared stream's gets."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.harness.client import GraphQLClient, Operation
from tests.harness.relayed import wait_relayed
from tests.harness.stack import Stack, start_embedded
from tests.harness.traces import Span, TraceReceiver
from tests.integration.flows import MESSAGE_EVENTS, send
from tests.integration.message_flows import guild

# The sender shows its message as the others see it, with the author's display name: a field only the
# users subgraph resolves (messages provides `username` alone), so the router's plan calls messages for
# the mutation, then users (`_entities`) for the name.
SEND_SHOWN = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) {
    __typename
    ... on Message { id content author { id displayName } }
    ... on UserError { code message field }
  }
}"""

STARTED: set[str] = set()  # the trace ids this module started: nothing else may be sampled


@pytest.fixture(scope="module")
def per_subscriber_stack(trace_receiver: TraceReceiver) -> Iterator[Stack]:
    stack = start_embedded(trace_receiver.settings() | {"BEEP_FANOUT": "0"})
    try:
        yield stack
    finally:
        stack.stop()


async def created(operation: Operation, content: str, timeout: float = 20) -> dict[str, Any]:
    """The next MessageCreated with this content: its whole payload (its `extensions` too)."""
    while True:
        message = await operation.next(timeout=timeout)
        assert message["type"] == "next" and not message["payload"].get("errors"), message
        event = message["payload"]["data"]["messageEvents"]
        if event["__typename"] == "MessageCreated" and event["message"]["content"] == content:
            return dict(message["payload"])


async def traced_send(stack: Stack) -> tuple[str, str]:
    """With a listener subscribed: an unsampled message (delivered as ever, nothing to continue), then one
    the client traces. Its trace id and the client's span id."""
    owner, members, _server, channel = await guild(stack, 1)
    _account, listener = members[0]
    async with listener.subscriptions() as connection:
        await wait_relayed(stack)  # the set-up's events are out: none can be the stream's first
        operation = await connection.subscribe(MESSAGE_EVENTS, {"channelId": channel})
        # The protocol has no "ready", and a message published before the subgraph has subscribed to the
        # bus is not delivered (a loaded machine takes over a second): unsampled messages until one is.
        for attempt in range(10):
            await send(owner, channel, "untraced")
            try:
                await created(operation, "untraced", timeout=3)
                break
            except TimeoutError:
                assert attempt < 9, "no unsampled message was delivered"
        trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
        STARTED.add(trace_id)
        sent = await GraphQLClient(stack.router_url, owner.token).execute(
            SEND_SHOWN,
            {"input": {"channelId": channel, "content": "traced"}},
            traceparent=f"00-{trace_id}-{client_span}-01",
        )
        assert not sent.errors and sent.data is not None, sent.errors
        assert sent.data["sendMessage"]["author"]["displayName"], sent.data
        event = await created(operation, "traced")
        assert "traceparent" not in str(event)  # the delivery's context stays inside
    return trace_id, client_span


Checks = dict[str, bool]


async def collected(
    receiver: TraceReceiver, trace_id: str, checks: Callable[[list[Span]], Checks]
) -> tuple[list[Span], Checks]:
    """The trace once every check holds (exporters batch for 1 s; a loaded machine takes longer)."""
    deadline = time.monotonic() + 30
    while True:
        spans = receiver.trace(trace_id)
        found = checks(spans)
        if all(found.values()) or time.monotonic() > deadline:
            return spans, found
        await asyncio.sleep(0.5)


class Tree:
    """A trace's spans, by id, to find one by what it is and where it hangs."""

    def __init__(self, spans: list[Span]) -> None:
        self.spans = spans
        self.by_id = {s.span_id: s for s in spans}

    def find(self, service: str, name: str, parent: Span | None = None, **attributes: Any) -> Span | None:
        """The first span of this service and name (a prefix with "…"), under `parent` if given."""
        for s in self.spans:
            named = s.name.startswith(name[:-1]) if name.endswith("…") else s.name == name
            if s.service != service or not named:
                continue
            if parent is not None and not self.under(s, parent):
                continue
            if all(s.attributes.get(k) == v for k, v in attributes.items()):
                return s
        return None

    def under(self, span: Span, ancestor: Span) -> bool:
        seen = span
        while (parent := self.by_id.get(seen.parent_id)) is not None:
            if parent is ancestor:
                return True
            seen = parent
        return False

    def roots(self) -> set[str]:
        """The parent ids not in the trace: only the client's span, if the trace is one tree."""
        return {s.parent_id for s in self.spans if s.parent_id not in self.by_id}


def child(span: Span | None, parent: Span | None) -> bool:
    return span is not None and parent is not None and span.parent_id == parent.span_id


def pid(span: Span | None) -> object:
    return None if span is None else span.resource.get("process.pid")


def full_checks(stack: Stack, client_span: str) -> Callable[[list[Span]], Checks]:
    pids = {name: process.pid for name, process in stack.processes}

    def checks(spans: list[Span]) -> Checks:
        t = Tree(spans)
        request = t.find("beep-router", "POST /graphql")
        to_messages = t.find("beep-router", "subgraph.execute (messages)", request)
        to_users = t.find("beep-router", "subgraph.execute (users)", request)
        messages = t.find("beep-messages", "POST /graphql", to_messages)
        mutation = t.find(
            "beep-messages", "graphql.operation", messages, **{"graphql.operation.type": "mutation"}
        )
        transaction = t.find("beep-messages", "transaction", mutation)
        # On PostgreSQL the message and its outbox row are one statement (messages/service.py).
        write = t.find("beep-messages", "WITH postgresql", transaction)
        users = t.find("beep-users", "POST /graphql", to_users)
        entities = t.find("beep-users", "graphql.operation", users, **{"graphql.operation.type": "query"})
        relay = t.find("beep-worker", "outbox.relay")
        publish = t.find("beep-worker", "PUBLISH…", relay)
        delivery = t.find("beep-messages", "bus.deliver")
        fanout = t.find(
            "beep-router", "fanout.deliver", **{"beep.field": "messageEvents", "beep.shared": True}
        )
        return {
            "router request, child of the client's span": request is not None
            and request.parent_id == client_span,
            "router calls messages": to_messages is not None,
            "router calls users (the second subgraph, in the same plan)": to_users is not None,
            "messages server span under the router's call": messages is not None,
            "messages server span is the messages process": pid(messages) == pids["messages"],
            "messages mutation operation": mutation is not None,
            "messages transaction in the mutation": transaction is not None,
            "messages write (message and event, one statement) in the transaction": write is not None,
            "users server span under the router's call": users is not None,
            "users server span is the users process": pid(users) == pids["users"],
            "users operation (the router's _entities query)": entities is not None,
            "worker relay continues the transaction (context stored in the outbox)": child(
                relay, transaction
            ),
            "worker relay runs in the worker process": pid(relay) == pids["worker"] != pids["messages"],
            "bus publish (Redis) in the relay": publish is not None
            and "redis" in (publish.attributes.get("db.system"), publish.attributes.get("db.system.name")),
            "messages bus delivery continues the relay": child(delivery, relay),
            "bus delivery in the messages process the listener's router reaches": pid(delivery)
            == pids["messages"],
            "router fan-out delivery continues the bus delivery": child(fanout, delivery)
            and fanout is not None
            and int(fanout.attributes.get("beep.sockets") or 0) >= 1,
            "one tree, rooted at the client's span": t.roots() == {client_span},
        }

    return checks


def per_subscriber_checks(client_span: str) -> Callable[[list[Span]], Checks]:
    def checks(spans: list[Span]) -> Checks:
        t = Tree(spans)
        request = t.find("beep-router", "POST /graphql")
        transaction = t.find("beep-all", "transaction", request)
        relay = t.find("beep-all", "outbox.relay")
        delivery = t.find("beep-all", "bus.deliver")
        fanout = t.find("beep-router", "fanout.deliver", **{"beep.field": "messageEvents"})
        return {
            "router request, child of the client's span": request is not None
            and request.parent_id == client_span,
            "router calls users too": t.find("beep-router", "subgraph.execute (users)", request) is not None,
            "transaction in the request": transaction is not None,
            "relay continues the transaction": child(relay, transaction),
            "bus delivery continues the relay": child(delivery, relay),
            "router delivery per subscriber continues the bus delivery": child(fanout, delivery),
            "…with the shared path's name and attributes, one socket, not shared": fanout is not None
            and fanout.attributes.get("beep.sockets") == 1
            and fanout.attributes.get("beep.shared") is False,
            "one tree, rooted at the client's span": t.roots() == {client_span},
        }

    return checks


def assert_checks(spans: list[Span], found: Checks) -> None:
    failed = [name for name, ok in found.items() if not ok]
    if failed:
        names = {s.span_id: s.name for s in spans}
        listing = [f"{s.service} {s.name} {dict(s.attributes)} <- {names.get(s.parent_id)}" for s in spans]
        pytest.fail("failed: {}\nspans:\n{}".format(failed, "\n".join(listing)))


async def test_a_message_is_one_trace_across_the_router_two_subgraphs_and_the_worker(
    full_stack: Stack, trace_receiver: TraceReceiver
) -> None:
    trace_id, client_span = await traced_send(full_stack)
    spans, found = await collected(trace_receiver, trace_id, full_checks(full_stack, client_span))
    assert_checks(spans, found)


async def test_a_subscription_executed_per_subscriber_gets_the_same_delivery_span(
    per_subscriber_stack: Stack, trace_receiver: TraceReceiver
) -> None:
    trace_id, client_span = await traced_send(per_subscriber_stack)
    spans, found = await collected(trace_receiver, trace_id, per_subscriber_checks(client_span))
    assert_checks(spans, found)
    # Nothing sampled outside a sampled caller's trace (ratio 0): the sign-ups and the set-up are not
    # (an outbox consumer's batch span links to the traces it covers).
    strays = [s for s in trace_receiver.all() if s.trace_id not in STARTED and not STARTED & set(s.links)]
    assert not strays, {(s.service, s.name) for s in strays}
