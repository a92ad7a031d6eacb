"""The router's fan-out tier (router/fanout.ts): sockets that would receive the same bytes share one
rendered stream, and access is still decided per socket by the subgraph that owns the field.

Driven as clients do, through the public URL: several users and sockets on one channel, a viewer-dependent
field, a member removed while a message follows at once, resuming into a live shared stream, a subgraph
killed under a stream (full mode), and the internal credential presented from outside."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets

from subgraphs.kernel.web import internal
from subgraphs.kernel.web.live_access import FEED_HEARTBEAT_SECONDS
from tests.harness.client import GraphQLClient, Operation, SubscriptionConnection, is_live_signal
from tests.harness.scraped import moved, scrape, total
from tests.harness.stack import Stack, start_embedded
from tests.integration.flows import (
    MESSAGE_EVENTS,
    send,
    stream_error_code,
    subscribe_settled,
)
from tests.integration.message_flows import created, guild, router_urls, streams_opened

BLOCKED_EVENTS = """subscription($channelId: ID!) { messageEvents(channelId: $channelId) {
  __typename ... on MessageCreated { message { id content authorBlocked author { username } } } } }"""
RESUMABLE = """subscription($c: ID!, $after: String) { messageEvents(channelId: $c, after: $after) {
  __typename ... on MessageCreated { cursor message { id content } } } }"""
HEAD = "query($c: ID!) { messages(channelId: $c, first: 1) { eventCursor } }"
BLOCK = "mutation($u: ID!) { blockUser(userId: $u) { __typename } }"
KICK = """mutation($s: ID!, $u: ID!) { kickMember(serverId: $s, userId: $u) { __typename } }"""


async def test_one_rendered_stream_serves_every_socket_every_event_once(stack: Stack) -> None:
    owner, members, _server, channel = await guild(stack, 3)
    before = streams_opened(stack)
    urls = router_urls(stack)
    connections: list[SubscriptionConnection] = []
    operations: list[Operation] = []
    try:
        for i, (account, _client) in enumerate(members * 2):  # two sockets per user
            url = urls[i % len(urls)]
            connection = GraphQLClient(url, account.token).subscriptions()
            connections.append(await connection.__aenter__())
            operations.append(await subscribe_settled(connection, MESSAGE_EVENTS, {"channelId": channel}))
        sent = [(await send(owner, channel, f"fan {i}"))["id"] for i in range(5)]
        for operation in operations:
            events = await created(operation, 5)
            assert [e["message"]["id"] for e in events] == sent
            assert {e["message"]["channel"]["name"] for e in events} == {"lobby"}
            assert all(e["message"]["author"]["username"].startswith("fanowner") for e in events)
            await operation.expect_nothing(within=0.5)
    finally:
        for connection in connections:
            await connection.__aexit__(None, None, None)
    # Six sockets on one channel: one stream per router, whatever the number of sockets.
    assert streams_opened(stack) - before == len(urls)


async def test_a_viewer_dependent_field_is_rendered_for_each_user(stack: Stack) -> None:
    owner, members, _server, channel = await guild(stack, 2)
    (blocker, blocker_client), (other, _other_client) = members
    author_id = (await owner.data("{ me { id } }"))["me"]["id"]
    blocked = await blocker_client.data(BLOCK, {"u": author_id})
    assert blocked["blockUser"]["__typename"] == "BlockChange", blocked
    before = streams_opened(stack, "user")
    async with (
        GraphQLClient(stack.router_url, blocker.token).subscriptions() as c1,
        GraphQLClient(stack.router_url, other.token).subscriptions() as c2,
    ):
        mine = await subscribe_settled(c1, BLOCKED_EVENTS, {"channelId": channel})
        theirs = await subscribe_settled(c2, BLOCKED_EVENTS, {"channelId": channel})
        await send(owner, channel, "hello")
        (seen_by_blocker,) = await created(mine, 1)
        (seen_by_other,) = await created(theirs, 1)
    assert seen_by_blocker["message"]["authorBlocked"] is True
    assert seen_by_other["message"]["authorBlocked"] is False
    assert streams_opened(stack, "user") - before == 2


@asynccontextmanager
async def two_watching(stack: Stack) -> AsyncIterator[Watching]:
    """A guild whose two members watch its channel through router A, each on a socket of their own."""
    owner, members, server, channel = await guild(stack, 2)
    (kicked, _kc), (staying, _sc) = members
    async with (
        GraphQLClient(stack.router_url, kicked.token).subscriptions() as c1,
        GraphQLClient(stack.router_url, staying.token).subscriptions() as c2,
    ):
        gone = await subscribe_settled(c1, MESSAGE_EVENTS, {"channelId": channel})
        kept = await subscribe_settled(c2, MESSAGE_EVENTS, {"channelId": channel})
        yield Watching(owner, server, channel, kicked.user_id, gone, kept)


@dataclass
class Watching:
    owner: GraphQLClient
    server: str
    channel: str
    kicked_user: str
    gone: Operation  # the socket of the member about to be kicked
    kept: Operation


async def kick_then_send(w: Watching) -> None:
    """Kicks a watcher and sends at once: the other gets the message; the kicked one only its error."""
    assert (await w.owner.data(KICK, {"s": w.server, "u": w.kicked_user}))["kickMember"]["__typename"] == (
        "MemberRemoved"
    )
    await send(w.owner, w.channel, "right after the kick")
    (after,) = await created(w.kept, 1)
    assert after["message"]["content"] == "right after the kick"
    ending = await w.gone.next(timeout=15)
    assert stream_error_code(ending) in ("FORBIDDEN", "NOT_FOUND"), ending
    rest = []
    while True:
        message = await w.gone.next(timeout=15)
        if message["type"] == "complete":
            break
        rest.append(message)
    assert rest == [], rest


async def test_a_removed_member_gets_no_shared_frame_not_even_the_next_one(stack: Stack) -> None:
    async with two_watching(stack) as w:
        await send(w.owner, w.channel, "before")
        await created(w.gone, 1)
        await created(w.kept, 1)
        await kick_then_send(w)


@pytest.mark.full
async def test_the_access_change_feed_outlives_its_heartbeats(full_stack: Stack) -> None:
    """The tier's access-change feed is one long request: it stays connected past the subgraph's heartbeat
    (it used to end at the first one, and each reconnect re-asked about every stream the router held, a
    burst every 16 s), and a change announced after the heartbeats still holds back the next frame."""
    metrics = f"http://127.0.0.1:{full_stack.router_envs['router-a']['BEEP_ROUTER_METRICS_PORT']}/metrics"
    async with two_watching(full_stack) as w:
        before = scrape(metrics)[1]
        assert total(before, "beep_router_fanout_feed_connections_total", subgraph="messages") >= 1
        await asyncio.sleep(FEED_HEARTBEAT_SECONDS + 3)
        after = scrape(metrics)[1]
        assert moved(before, after, "beep_router_fanout_feed_connections_total", subgraph="messages") == 0
        assert moved(before, after, "beep_router_fanout_access_checks_total", reason="feed_reconnect") == 0
        await kick_then_send(w)
    final = scrape(metrics)[1]
    assert moved(before, final, "beep_router_fanout_access_checks_total", reason="access_change") >= 1


async def test_resuming_meets_the_shared_stream_with_no_gap_and_no_repeat(stack: Stack) -> None:
    owner, members, _server, channel = await guild(stack, 2)
    (live_user, _lc), (late_user, _rc) = members
    cursor = (await owner.data(HEAD, {"c": channel}))["messages"]["eventCursor"]
    async with (
        GraphQLClient(stack.router_url, live_user.token).subscriptions() as live,
        GraphQLClient(stack.router_url, late_user.token).subscriptions() as late,
    ):
        keeper = await subscribe_settled(live, RESUMABLE, {"c": channel})
        missed = [(await send(owner, channel, f"missed {i}"))["id"] for i in range(5)]

        async def more() -> list[str]:
            return [(await send(owner, channel, f"live {i}"))["id"] for i in range(10)]

        sending = asyncio.create_task(more())
        resumed = await late.subscribe(RESUMABLE, {"c": channel, "after": cursor})
        live_ids = await sending
        got = await created(resumed, 15)
        await resumed.expect_nothing(within=1.0)
        assert [e["message"]["id"] for e in got] == missed + live_ids
        cursors = [e["cursor"] for e in got]
        assert len(set(cursors)) == 15
        assert len(await created(keeper, 15)) == 15


@pytest.mark.parametrize("victim", ["messages-2"])
async def test_a_shared_stream_survives_its_subgraph_being_killed(full_stack: Stack, victim: str) -> None:
    """Router B reaches the second messages process: killed under a live stream, then started again. The
    tier reopens the stream from its last cursor; its sockets see every message once, in order."""
    owner, members, _server, channel = await guild(full_stack, 1)
    ((member, _mc),) = members
    assert full_stack.second_router_url
    async with GraphQLClient(full_stack.second_router_url, member.token).subscriptions() as connection:
        operation = await subscribe_settled(connection, RESUMABLE, {"c": channel})
        first = [(await send(owner, channel, f"before {i}"))["id"] for i in range(3)]
        assert [e["message"]["id"] for e in await created(operation, 3)] == first
        await asyncio.to_thread(full_stack.restart_subgraph, victim)
        during = [(await send(owner, channel, f"after {i}"))["id"] for i in range(3)]
        got = await created(operation, 3)
        assert [e["message"]["id"] for e in got] == during
        await operation.expect_nothing(within=1.0)


async def test_a_shared_stream_with_no_event_yet_replays_what_its_subgraph_missed(full_stack: Stack) -> None:
    """The same, before the stream's first event: it has no cursor of its own, so it reopens from where
    its upstream said it was live from (the live signal's `beepLiveFrom`). Messages sent (through router
    A) while router B's messages process is down reach router B's socket once it is back."""
    owner, members, _server, channel = await guild(full_stack, 1)
    ((member, _mc),) = members
    assert full_stack.second_router_url
    async with GraphQLClient(full_stack.second_router_url, member.token).subscriptions() as connection:
        operation = await subscribe_settled(connection, RESUMABLE, {"c": channel})
        await asyncio.to_thread(full_stack.kill, "messages-2")
        while_down = [(await send(owner, channel, f"while down {i}"))["id"] for i in range(3)]
        await asyncio.to_thread(full_stack.start_subgraph, "messages-2")
        after = [(await send(owner, channel, f"after {i}"))["id"] for i in range(2)]
        got = await created(operation, 5)
        assert [e["message"]["id"] for e in got] == while_down + after
        await operation.expect_nothing(within=1.0)


async def test_the_internal_credential_is_refused_from_outside(stack: Stack) -> None:
    owner, _members, _server, channel = await guild(stack, 0)
    user_id = (await owner.data("{ me { id } }"))["me"]["id"]
    secret = stack.env["BEEP_INTERNAL_SECRET"]
    genuine = internal.fanout_credential(secret, int(user_id), int(time.time()) + 600)
    forged = internal.fanout_credential("not-the-secret", int(user_id), int(time.time()) + 600)
    query = {"query": "{ me { id } }"}
    async with httpx.AsyncClient(timeout=15) as http:
        # The public URL takes only Bearer tokens, even a genuine internal credential.
        for router in router_urls(stack):
            response = await http.post(router, json=query, headers={"authorization": genuine})
            assert response.status_code == 401, response.text
            assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            async with websockets.connect(
                router.replace("http://", "ws://"), subprotocols=["graphql-transport-ws"]
            ) as ws:
                await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": genuine}}))
                await ws.send(
                    json.dumps(
                        {
                            "id": "1",
                            "type": "subscribe",
                            "payload": {"query": MESSAGE_EVENTS, "variables": {"channelId": channel}},
                        }
                    )
                )
                answers = []
                try:
                    while len(answers) < 3:
                        answers.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
                except (websockets.ConnectionClosed, TimeoutError):
                    pass
                assert not any(a.get("type") == "next" and (a["payload"].get("data") or {}) for a in answers)
        # Subgraphs: a credential without the secret is refused, and so is an unsigned internal request.
        for url in stack.subgraph_urls.values():
            # (from a caller holding the internal credential, or its lack would be the refusal)
            response = await http.post(
                url, json=query, headers={"authorization": forged, **stack.internal_headers}
            )
            assert response.status_code == 401, (url, response.text)
            base = url.removesuffix("/graphql")
            body = json.dumps(
                {"field": "messageEvents", "arguments": {"channelId": channel}, "users": [user_id]}
            )
            unsigned = await http.post(f"{base}/internal/live-access", content=body)
            assert unsigned.status_code == 401, (url, unsigned.text)
            wrong = internal.sign("not-the-secret", body.encode())
            refused = await http.post(
                f"{base}/internal/live-access", content=body, headers={internal.SIGNATURE_HEADER: wrong}
            )
            assert refused.status_code == 401
            stale = internal.sign(secret, body.encode(), now=time.time() - 3600)
            replayed = await http.post(
                f"{base}/internal/live-access", content=body, headers={internal.SIGNATURE_HEADER: stale}
            )
            assert replayed.status_code == 401
        # Signed with the deployment's secret, the owner of the field answers (the 401s above are refusals).
        messages = stack.subgraph_urls["messages"].removesuffix("/graphql")
        body = json.dumps({"field": "messageEvents", "arguments": {"channelId": channel}, "users": [user_id]})
        signed = await http.post(
            f"{messages}/internal/live-access",
            content=body,
            headers={internal.SIGNATURE_HEADER: internal.sign(secret, body.encode())},
        )
        assert signed.status_code == 200 and signed.json()["allowed"] == [user_id], signed.text


SLOW_BUFFER = 8  # events a socket may fall behind on the slow-consumer stack
TOTAL = 100  # messages sent while the slow socket does not read
COPIES = 40  # subscriptions on the slow socket: 4,000 frames of ~4 KB, past what loopback buffers hold


@pytest.fixture(scope="module")
def small_buffer_stack() -> Iterator[Stack]:
    """An embedded stack whose routers cut a socket off past SLOW_BUFFER events (the default is 1,000)."""
    stack = start_embedded({"BEEP_FANOUT_BUFFER": str(SLOW_BUFFER)})
    yield stack
    stack.stop()


async def _stalled_socket(url: str, token: str, channel: str) -> websockets.ClientConnection:
    """A client that subscribes COPIES times, then stops reading (a 4 KiB receive buffer, a one-frame
    queue). Loopback TCP buffers grow to megabytes, hence many subscriptions of large messages."""
    host, port = url.split("://", 1)[1].split("/", 1)[0].split(":")
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect((host, int(port)))
    raw.setblocking(False)
    ws = await websockets.connect(
        url.replace("http://", "ws://"), sock=raw, subprotocols=["graphql-transport-ws"], max_queue=1
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    for n in range(COPIES):
        payload = {"query": RESUMABLE, "variables": {"c": channel}, "extensions": {"liveSignal": True}}
        await ws.send(json.dumps({"id": f"s{n}", "type": "subscribe", "payload": payload}))
    # Every subscription is live once its signal came (small frames, read before the socket stalls).
    live = 0
    while live < COPIES:
        message = json.loads(await asyncio.wait_for(ws.recv(), 15))
        assert is_live_signal(message) or message["type"] == "ping", message
        live += is_live_signal(message)
    return ws


async def test_a_slow_socket_is_cut_off_without_slowing_the_others_and_resumes(
    small_buffer_stack: Stack,
) -> None:
    stack = small_buffer_stack
    owner, members, _server, channel = await guild(stack, 2)
    (fast_user, _fc), (slow_user, _sc) = members
    body = "x" * 3900  # large frames (a message holds 4,000 characters)
    async with GraphQLClient(stack.router_url, fast_user.token).subscriptions() as fast:
        keeper = await subscribe_settled(fast, RESUMABLE, {"c": channel})
        slow = await _stalled_socket(stack.router_url, slow_user.token, channel)
        sent = [(await send(owner, channel, f"{i} {body}"))["id"] for i in range(TOTAL)]
        # The fast socket has everything at once: the stalled one did not hold it back.
        assert [e["message"]["id"] for e in await created(keeper, TOTAL)] == sent
        # The stalled socket reads now. Each subscription has all messages in order, or a prefix of them,
        # then SLOW_CONSUMER, and is complete.
        received: dict[str, list[dict[str, Any]]] = {f"s{n}": [] for n in range(COPIES)}
        cut: set[str] = set()
        done: set[str] = set()
        while len(done) < COPIES:
            message = json.loads(await asyncio.wait_for(slow.recv(), 15))
            op = message.get("id", "")
            if message["type"] == "complete":
                done.add(op)
            elif message["payload"].get("errors"):
                assert stream_error_code(message) == "SLOW_CONSUMER", message
                cut.add(op)
            else:
                received[op].append(message["payload"]["data"]["messageEvents"])
                if len(received[op]) == TOTAL:
                    done.add(op)
        assert cut, "no subscription was cut off"
        for op, events in received.items():
            assert [e["message"]["id"] for e in events] == sent[: len(events)], op
            assert op in cut or len(events) == TOTAL
        # A cut-off subscription resumes from the last cursor it had: the rest, once.
        op = min(cut, key=lambda o: len(received[o]))
        had = received[op]
        assert had, "the subscription got nothing before it was cut off"
        variables = {"c": channel, "after": had[-1]["cursor"]}
        await slow.send(
            json.dumps(
                {"id": "r", "type": "subscribe", "payload": {"query": RESUMABLE, "variables": variables}}
            )
        )
        rest: list[dict[str, Any]] = []
        while len(had) + len(rest) < TOTAL:
            message = json.loads(await asyncio.wait_for(slow.recv(), 15))
            if message.get("id") != "r":
                continue  # the subscriptions that were not cut off are still live
            assert message["type"] == "next" and not message["payload"].get("errors"), message
            rest.append(message["payload"]["data"]["messageEvents"])
        await slow.close()
    assert [e["message"]["id"] for e in had + rest] == sent


async def test_a_client_resumes_across_a_router_restart(full_stack: Stack) -> None:
    """Router A (its fan-out tier with it) is killed under a socket; what is sent meanwhile goes through
    router B. The client reconnects to A once it is back and resumes from its last cursor: every message
    once, in order, then live ones."""
    owner, members, _server, channel = await guild(full_stack, 1)
    ((member, _mc),) = members
    assert full_stack.second_router_url
    other = GraphQLClient(full_stack.second_router_url, owner.token)
    connection = GraphQLClient(full_stack.router_url, member.token).subscriptions()
    await connection.__aenter__()
    try:
        operation = await subscribe_settled(connection, RESUMABLE, {"c": channel})
        before = [(await send(owner, channel, f"before {i}"))["id"] for i in range(3)]
        seen = await created(operation, 3)
        assert [e["message"]["id"] for e in seen] == before
        await asyncio.to_thread(full_stack.kill, "router-a")
        assert connection.closed is not None
        await asyncio.wait_for(asyncio.shield(connection.closed), 15)
    finally:
        await connection.__aexit__(None, None, None)
    during = [(await send(other, channel, f"during {i}"))["id"] for i in range(3)]
    await asyncio.to_thread(full_stack.restart_router, "router-a")
    async with GraphQLClient(full_stack.router_url, member.token).subscriptions() as again:
        resumed = await again.subscribe(RESUMABLE, {"c": channel, "after": seen[-1]["cursor"]})
        assert [e["message"]["id"] for e in await created(resumed, 3)] == during
        live = (await send(other, channel, "after the restart"))["id"]
        assert [e["message"]["id"] for e in await created(resumed, 1)] == [live]
        await resumed.expect_nothing(within=1.0)
