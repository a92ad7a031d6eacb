"""Calls owned by one of several processes (full mode): two channels processes host calls
(BEEP_VOICE_NODES), each behind its own router. Whichever replica a client reaches, its call is run by
the channel's one owner: two members joining the same call through different replicas hear each other;
either replica lists the call; one call at a time holds across owners; the internal endpoint wants its
secret."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from beep.router import wait_ready
from media.voice.hub import owner_of
from tests.harness.client import GraphQLClient
from tests.harness.ports import free_port
from tests.harness.stack import BEEP, Stack
from tests.harness.voice_api import JOIN, LEAVE, STATES, join_call, renegotiate
from tests.harness.voice_peers import VoicePeer, wait_until
from tests.integration.flows import accept, create_channel, create_server, invite, sign_up

pytestmark = pytest.mark.full


@dataclass
class Replicas:
    routers: list[str]  # router i reaches channels replica i; the last one an API-only replica
    nodes: list[str]
    secret: str
    api: str  # the API-only replica's base URL


@pytest.fixture(scope="module")
def replicas(full_stack: Stack) -> Iterator[Replicas]:
    """Two more channels processes on the full stack, configured as voice nodes, each behind a router."""
    ports = [free_port(), free_port()]
    nodes = [f"http://127.0.0.1:{port}" for port in ports]
    secret = secrets.token_hex(16)
    started = []
    for port, node in zip(ports, nodes, strict=True):
        env = full_stack.env | {
            "BEEP_VOICE_NODES": ",".join(nodes),
            "BEEP_VOICE_NODE_URL": node,
            "BEEP_VOICE_INTERNAL_SECRET": secret,
        }
        name = f"channels-voice-{port}"
        process = full_stack.spawn(name, [*BEEP, "serve", "channels", "--port", str(port)], env=env)
        started.append(process)
        wait_ready(f"{node}/healthz", process=process)
    issuer = full_stack.env["BEEP_ISSUER_URL"]
    # And a replica that only serves the API: it lists the nodes but is none of them.
    api_port = free_port()
    api = full_stack.spawn(
        f"channels-api-{api_port}",
        [*BEEP, "serve", "channels", "--port", str(api_port)],
        env=full_stack.env | {"BEEP_VOICE_NODES": ",".join(nodes), "BEEP_VOICE_INTERNAL_SECRET": secret},
    )
    started.append(api)
    wait_ready(f"http://127.0.0.1:{api_port}/healthz", process=api)
    routers = [
        full_stack.start_router(
            f"router-voice-{i}",
            full_stack.subgraph_urls | {"channels": f"{base}/graphql"},
            f"{issuer}/.well-known/jwks.json",
            issuer,
        )
        for i, base in enumerate([*nodes, f"http://127.0.0.1:{api_port}"])
    ]
    yield Replicas(routers, nodes, secret, f"http://127.0.0.1:{api_port}")
    for process in started:
        process.terminate()


async def _one_channel_per_owner(client: GraphQLClient, server_id: str, nodes: list[str]) -> list[str]:
    """Voice channels of the server, the i-th owned by node i."""
    channels: dict[str, str] = {}
    while len(channels) < len(nodes):
        channel = await create_channel(
            client, server_id, f"room{len(channels)}{secrets.token_hex(2)}", kind="VOICE"
        )
        channels.setdefault(owner_of(int(channel["id"]), nodes), channel["id"])
    return [channels[node] for node in nodes]


def _hears(peer: VoicePeer, user_id: str, tone: float) -> bool:
    got = peer.from_(user_id)
    return got is not None and got.frames > 60 and abs(got.frequency() - tone) < tone * 0.05


async def test_one_owner_per_call_whichever_replica_a_client_reaches(replicas: Replicas) -> None:
    via = [GraphQLClient(url) for url in replicas.routers]
    ada, bob = await sign_up(via[0], "ada"), await sign_up(via[1], "bob")
    ada_0, ada_1 = via[0].with_token(ada.token), via[1].with_token(ada.token)
    bob_1 = via[1].with_token(bob.token)
    server = await create_server(ada_0, "Owners")
    assert (await accept(bob_1, (await invite(ada_0, server["id"]))["inviteCode"]))["__typename"] == "Server"
    lounge, other = await _one_channel_per_owner(ada_0, server["id"], replicas.nodes)
    # Ada reaches replica 0, which owns the lounge; Bob reaches replica 1, which does not.
    a, joined = await join_call(ada_0, lounge, 440.0)
    b, _ = await join_call(bob_1, lounge, 660.0)
    try:
        assert joined["__typename"] == "VoiceSession", joined
        for client in (ada_0, bob_1):
            states = (await client.data(STATES, {"c": lounge}))["voiceStates"]
            assert [s["userId"] for s in states] == [ada.user_id, bob.user_id]
        await renegotiate(ada_0, a, (await ada_0.data(STATES, {"c": lounge}))["voiceStates"], ada.user_id)
        await wait_until(lambda: _hears(a, bob.user_id, 660.0) and _hears(b, ada.user_id, 440.0), timeout=30)
        # One call at a time, although the other channel's call is owned by the other process.
        probe = VoicePeer(500.0)
        offer = await probe.offer()
        await probe.close()
        refused = (await ada_1.data(JOIN, {"i": {"channelId": other, "offer": offer}}))["joinVoice"]
        assert (refused["__typename"], refused["code"]) == ("ConflictError", "ALREADY_IN_CALL")
        # Bob leaves through replica 1: the owner (replica 0) lets him go.
        left = (await bob_1.data(LEAVE))["leaveVoice"]
        assert left == {"__typename": "VoiceLeft", "channelId": lounge}
        states = (await ada_0.data(STATES, {"c": lounge}))["voiceStates"]
        assert [s["userId"] for s in states] == [ada.user_id]
    finally:
        await a.close()
        await b.close()
        await ada_0.execute(LEAVE)
        await bob_1.execute(LEAVE)


async def test_an_api_only_replica_reaches_the_nodes_calls_and_hosts_none(replicas: Replicas) -> None:
    api_router, api_url = replicas.routers[-1], replicas.api
    via_api, via_1 = GraphQLClient(api_router), GraphQLClient(replicas.routers[1])
    dee, eve = await sign_up(via_api, "dee"), await sign_up(via_1, "eve")
    dee_api, eve_1 = via_api.with_token(dee.token), via_1.with_token(eve.token)
    server = await create_server(dee_api, "API only")
    code = (await invite(dee_api, server["id"]))["inviteCode"]
    assert (await accept(eve_1, code))["__typename"] == "Server"
    room = (await _one_channel_per_owner(dee_api, server["id"], replicas.nodes))[0]
    d, joined = await join_call(dee_api, room, 440.0)
    e, _ = await join_call(eve_1, room, 660.0)
    try:
        assert joined["__typename"] == "VoiceSession", joined
        states = (await dee_api.data(STATES, {"c": room}))["voiceStates"]
        assert [s["userId"] for s in states] == [dee.user_id, eve.user_id]
        await renegotiate(dee_api, d, states, dee.user_id)
        await wait_until(lambda: _hears(d, eve.user_id, 660.0) and _hears(e, dee.user_id, 440.0), timeout=30)
        async with httpx.AsyncClient() as client:  # the call lives on node 0, never on the API replica
            headers = {"x-beep-voice-secret": replicas.secret}
            for base, expected in ((api_url, None), (replicas.nodes[0], int(room))):
                where = await client.post(
                    f"{base}/voice/internal/channel_of", json={"user_id": int(dee.user_id)}, headers=headers
                )
                assert where.json() == {"ok": expected}
        left = (await dee_api.data(LEAVE))["leaveVoice"]
        assert left == {"__typename": "VoiceLeft", "channelId": room}
    finally:
        await d.close()
        await e.close()
        await dee_api.execute(LEAVE)
        await eve_1.execute(LEAVE)


async def test_racing_joins_through_two_replicas_make_one_call(replicas: Replicas) -> None:
    """Two joins of one user at the same moment, through two replicas, to calls owned by two different
    nodes: each replica's "in no other call" check would pass alone; the join lease lets one through."""
    via = [GraphQLClient(url) for url in replicas.routers]
    cy = await sign_up(via[0], "cy")
    cy_0, cy_1 = via[0].with_token(cy.token), via[1].with_token(cy.token)
    server = await create_server(cy_0, "Racing")
    first, second = await _one_channel_per_owner(cy_0, server["id"], replicas.nodes)
    peers = [VoicePeer(440.0), VoicePeer(660.0)]
    try:
        offers = [await peer.offer() for peer in peers]
        for _attempt in range(3):  # several races, each from a clean slate
            outcomes = await asyncio.gather(
                cy_0.data(JOIN, {"i": {"channelId": first, "offer": offers[0]}}),
                cy_1.data(JOIN, {"i": {"channelId": second, "offer": offers[1]}}),
            )
            kinds = sorted((o["joinVoice"]["__typename"], o["joinVoice"].get("code")) for o in outcomes)
            assert kinds == [("ConflictError", "ALREADY_IN_CALL"), ("VoiceSession", None)], outcomes
            calls = [
                [s["userId"] for s in (await cy_0.data(STATES, {"c": c}))["voiceStates"]]
                for c in (first, second)
            ]
            assert sorted(calls) == [[], [cy.user_id]], calls
            left = (await cy_1.data(LEAVE))["leaveVoice"]
            assert left["__typename"] == "VoiceLeft", left
    finally:
        for peer in peers:
            await peer.close()
        await cy_0.execute(LEAVE)


async def test_the_internal_endpoint_wants_its_secret(replicas: Replicas) -> None:
    async with httpx.AsyncClient() as client:
        url = f"{replicas.nodes[0]}/voice/internal/states"
        assert (await client.post(url, json={"channel_id": 1})).status_code == 403
        wrong = await client.post(url, json={"channel_id": 1}, headers={"x-beep-voice-secret": "nope"})
        assert wrong.status_code == 403
        right = await client.post(
            url, json={"channel_id": 1}, headers={"x-beep-voice-secret": replicas.secret}
        )
        assert right.json() == {"ok": []}
        unknown = await client.post(
            f"{replicas.nodes[0]}/voice/internal/close",
            json={},
            headers={"x-beep-voice-secret": replicas.secret},
        )
        assert unknown.status_code == 404
