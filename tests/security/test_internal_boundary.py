"""Subgraphs are internal (issue 15): a subgraph's GraphQL endpoint serves only callers holding the
deployment's internal credential (kernel/web/internal.py), over HTTP and WebSocket, `_entities` and `_service`
included; forwarding headers count only from them; and what reaches a subgraph anyway meets its own depth,
alias, token and response limits (kernel/web/limits.py) without taking the process down. Sent as an attacker
on the network would: straight at the subgraph ports, bypassing the router."""

from __future__ import annotations

import asyncio
import json
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
import websockets

from subgraphs.kernel.settings import SUBGRAPH_NAMES
from subgraphs.kernel.web import internal
from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack, start_embedded
from tests.integration.flows import create_channel, create_server, sign_up, subscribe_settled, unique
from tests.integration.identity_helpers import SIGN_IN

SERVICE = "{ _service { sdl } }"
ENTITIES = {
    "users": ("User", "1"),
    "servers": ("Server", "1"),
    "channels": ("Channel", "1"),
    "messages": ("Message", "1"),
    "friends": ("User", "1"),
    "webhooks": ("Webhook", "1"),
}


def entities_query(typename: str) -> str:
    return (
        f"query($r: [_Any!]!) {{ _entities(representations: $r) {{ ... on {typename} {{ __typename }} }} }}"
    )


def refused(response: httpx.Response) -> bool:
    """The boundary's refusal: 403, a GraphQL error FORBIDDEN that says the service is internal."""
    assert response.status_code == 403, (response.status_code, response.text[:300])
    errors = response.json()["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"], errors
    assert "internal" in errors[0]["message"], errors
    return True


def assert_alive(stack: Stack) -> None:
    """Every process of the stack runs (one that died, e.g. because another run took its port, would
    leave its URL answered by someone else)."""
    dead = [name for name, p in stack.processes if p.poll() is not None]
    assert not dead, f"dead processes: {dead}\n{stack.logs(10)}"


def wrong_credentials(stack: Stack) -> dict[str, dict[str, str]]:
    secret = stack.env["BEEP_INTERNAL_SECRET"]
    return {
        "none": {},
        "forged": {internal.CALLER_HEADER: "v1." + "0" * 64},
        "another deployment's (or the secret before a rotation)": {
            internal.CALLER_HEADER: internal.caller_credential("not-" + secret)
        },
        "the secret itself": {internal.CALLER_HEADER: secret},
        "a fan-out credential": {internal.CALLER_HEADER: internal.fanout_credential(secret, 1, 2**40)},
        "a body signature": {internal.CALLER_HEADER: internal.sign(secret, b"")},
        "empty": {internal.CALLER_HEADER: ""},
    }


async def test_a_subgraph_refuses_every_request_without_the_internal_credential(stack: Stack) -> None:
    """HTTP POST and GET, `_service`, `_entities`, an ordinary query, a signed-in user's token: refused
    without the credential or with any other value; the same requests with it are answered."""
    assert_alive(stack)
    owner = await sign_up(GraphQLClient(stack.router_url), "gate")
    bearer = {"authorization": f"Bearer {owner.token}"}
    async with httpx.AsyncClient(timeout=30) as http:
        for name in SUBGRAPH_NAMES:
            url = stack.subgraph_urls[name]
            typename, id_ = ENTITIES[name]
            entities = {
                "query": entities_query(typename),
                "variables": {"r": [{"__typename": typename, "id": id_}]},
            }
            for label, headers in wrong_credentials(stack).items():
                for body in ({"query": SERVICE}, entities, {"query": "{ __typename }"}):
                    for extra in ({}, bearer):
                        response = await http.post(url, json=body, headers=headers | extra)
                        assert refused(response), (name, label, body)
                response = await http.get(url, params={"query": SERVICE}, headers=headers)
                assert refused(response), (name, label, "GET")
            # With the credential, the same requests are answered: the refusals above were the boundary's
            answered = await http.post(url, json={"query": SERVICE}, headers=stack.internal_headers)
            assert answered.status_code == 200 and "type Query" in answered.json()["data"]["_service"]["sdl"]
            answered = await http.post(url, json=entities, headers=stack.internal_headers | bearer)
            assert answered.status_code == 200, answered.text
            # Health checks stay open
            health = await http.get(url.removesuffix("/graphql") + "/healthz")
            assert health.status_code == 200


async def test_a_subgraph_refuses_a_websocket_without_the_internal_credential(stack: Stack) -> None:
    assert_alive(stack)
    owner = await sign_up(GraphQLClient(stack.router_url), "sock")
    init = json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {owner.token}"}})
    for name in SUBGRAPH_NAMES:
        url = stack.subgraph_urls[name].replace("http://", "ws://", 1)
        for label, headers in wrong_credentials(stack).items():
            with pytest.raises(websockets.InvalidStatus) as refusal:
                async with websockets.connect(
                    url, subprotocols=["graphql-transport-ws"], additional_headers=headers
                ) as ws:
                    await ws.send(init)
                    await asyncio.wait_for(ws.recv(), 10)
            assert refusal.value.response.status_code == 403, (name, label)
            assert b"FORBIDDEN" in refusal.value.response.body, (name, label)
        # With the credential the handshake and connection_init succeed
        async with websockets.connect(
            url, subprotocols=["graphql-transport-ws"], additional_headers=stack.internal_headers
        ) as ws:
            await ws.send(init)
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack", name


async def test_the_router_still_reaches_every_subgraph(stack: Stack) -> None:
    """Through the router (which adds the credential), a query touching several subgraphs and their
    `_entities`, and a subscription, work as before."""
    client = GraphQLClient(stack.router_url)
    owner = await sign_up(client, "via")
    as_owner = client.with_token(owner.token)
    server = await create_server(as_owner, "Routed", "PUBLIC")
    channel = await create_channel(as_owner, server["id"], "routed")
    query = """query($c: ID!) { channel(id: $c) { id name server { id name owner { username } } } }"""
    data = await as_owner.data(query, {"c": channel["id"]})
    assert data["channel"]["server"]["owner"]["username"] == owner.username
    async with as_owner.subscriptions() as connection:
        events = await subscribe_settled(
            connection,
            "subscription($c: ID!) { messageEvents(channelId: $c) {"
            " ... on MessageCreated { message { author { username } } } } }",
            {"c": channel["id"]},
        )
        await as_owner.data(
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { __typename } }",
            {"i": {"channelId": channel["id"], "content": "through the router"}},
        )
        event = await events.next(timeout=15)
        assert event["type"] == "next" and "data" in event["payload"], event
        assert event["payload"]["data"]["messageEvents"]["message"]["author"]["username"] == owner.username


# --- what reaches a subgraph anyway: its own limits --------------------------------------------------


def nested_channels(levels: int) -> str:
    """`channel(id) { server { channels { server { channels ... { id } } } } }` (levels of `channels`)."""
    return (
        "query($c: ID!) { channel(id: $c) { "
        + "server { channels { " * levels
        + "id"
        + " } }" * levels
        + " } }"
    )


def serving_channels(stack: Stack) -> int:
    """The process answering the channels subgraph: the single `beep serve all` or `beep serve channels`."""
    wanted = "beep-all" if stack.mode == "embedded" else "channels"
    return next(p.pid for name, p in stack.processes if name == wanted and p.poll() is None)


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


@contextmanager
def address_space_capped(pid: int, headroom: int) -> Iterator[None]:
    """The process may map at most `headroom` bytes more than it has now while the block runs: a
    regression fails its own allocation (MemoryError) instead of exhausting the machine."""
    soft, hard = resource.prlimit(pid, resource.RLIMIT_AS)
    cap = status_kib(pid, "VmSize") * 1024 + headroom
    resource.prlimit(pid, resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        with suppress(ProcessLookupError):  # it died: the test says so
            resource.prlimit(pid, resource.RLIMIT_AS, (soft, hard))


async def test_a_deep_or_huge_query_sent_straight_to_a_subgraph_fails_typed_and_the_process_stays_up(
    stack: Stack,
) -> None:
    """The issue's attack, with the credential (as if the boundary were passed): nested 24 deep, it is
    refused by the subgraph's depth limit; within the limit but growing as 20^levels, it stops at the
    response budget. Run with the process's address space capped at +1 GiB (so a regression fails there,
    not on the machine), and its peak memory must grow by less than 512 MiB."""
    client = GraphQLClient(stack.router_url)
    owner = await sign_up(client, "deep")
    as_owner = client.with_token(owner.token)
    server = await create_server(as_owner, unique("Wide"), "PUBLIC")
    channel = await create_channel(as_owner, server["id"], "c0")
    for i in range(1, 18):  # with the server's two default channels: 20
        await create_channel(as_owner, server["id"], f"c{i}")
    direct = GraphQLClient(stack.subgraph_urls["channels"], owner.token)
    headers = stack.internal_headers
    assert_alive(stack)
    pid = serving_channels(stack)
    peak_before = status_kib(pid, "VmHWM")
    with address_space_capped(pid, 1024**3):
        started = time.monotonic()
        deep = await direct.execute(nested_channels(12), {"c": channel["id"]}, **headers)  # depth 26
        assert deep.codes == ["GRAPHQL_VALIDATION_FAILED"], deep
        assert "Query depth limit of 16 exceeded" in deep.errors[0]["message"]
        # 20 + 400 + 8,000 + 160,000 channels: past the 50,000 items of the budget at the fourth level
        wide = await direct.execute(nested_channels(4), {"c": channel["id"]}, **headers)
        assert wide.codes == ["RESPONSE_TOO_LARGE"] and wide.data is None, (wide.status, str(wide)[:500])
        elapsed = time.monotonic() - started
    # The process is up and serves; it did not grow past a bound
    assert_alive(stack)
    assert (await direct.execute("{ __typename }", **headers)).data == {"__typename": "Query"}
    fine = await direct.execute(nested_channels(2), {"c": channel["id"]}, **headers)  # 420 channels
    assert not fine.errors and len(fine.data["channel"]["server"]["channels"]) == 20  # type: ignore[index]
    grown = status_kib(pid, "VmHWM") - peak_before
    assert grown < 512 * 1024, f"peak RSS grew by {grown} KiB"
    print(f"deep+wide refused in {elapsed:.2f}s; peak RSS grew by {grown} KiB")
    # Aliases and tokens likewise
    aliased = "{ " + " ".join(f"a{i}: __typename" for i in range(61)) + " }"
    assert (await direct.execute(aliased, **headers)).codes == ["GRAPHQL_VALIDATION_FAILED"]
    padded = "{ " + "__typename " * 5001 + "}"
    assert (await direct.execute(padded, **headers)).codes == ["GRAPHQL_VALIDATION_FAILED"]


# --- forwarding headers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_stack() -> Iterator[Stack]:
    """A stack of its own: the checks below may lock the loopback address out of sign-in."""
    stack = start_embedded()
    yield stack
    stack.stop()


async def test_rotating_x_forwarded_for_straight_at_the_users_subgraph_skips_no_throttle(
    own_stack: Stack,
) -> None:
    """The issue's bypass: 32 failed sign-ins straight at the users subgraph, each from a "new" address.
    Without the credential none is even attempted; through the router (which appends the real address)
    the 31st is RATE_LIMITED whatever X-Forwarded-For says."""
    person = await sign_up(GraphQLClient(own_stack.router_url), "xff")
    users = own_stack.subgraph_urls["users"]
    async with httpx.AsyncClient(timeout=30) as http:
        for i in range(32):
            guess = {"input": {"email": f"{unique('guess')}@example.test", "password": "wrong-guess"}}
            response = await http.post(
                users,
                json={"query": SIGN_IN, "variables": guess},
                headers={"x-forwarded-for": f"203.0.113.{i + 1}"},
            )
            assert refused(response), i
    router = GraphQLClient(own_stack.router_url)
    outcomes = []
    for i in range(32):
        guess = {"input": {"email": f"{unique('guess')}@example.test", "password": "wrong-guess"}}
        result = await router.execute(SIGN_IN, guess, **{"x-forwarded-for": f"198.51.100.{i + 1}"})
        assert result.data is not None, result
        outcomes.append(result.data["signIn"]["code"])
    assert outcomes[:30] == ["INVALID_CREDENTIALS"] * 30 and outcomes[30:] == ["RATE_LIMITED"] * 2, outcomes
    # The right password from the locked address is limited too
    right = {"input": {"email": person.email, "password": person.password}}
    locked = await router.execute(SIGN_IN, right)
    assert locked.data is not None and locked.data["signIn"]["code"] == "RATE_LIMITED", locked
