"""Voice and video calls through the router with real aiortc clients over loopback: three participants
hear each other (each sender's tone checked), see a camera and a shared screen, mute and unmute, leave or
vanish; every refusal is a typed error. On both stacks."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from subgraphs.kernel.tenancy.permissions import Permission
from subgraphs.kernel.web.ratelimit import VOICE_NEGOTIATION
from tests.harness.client import GraphQLClient
from tests.harness.stack import Stack
from tests.harness.voice_api import JOIN, LEAVE, STATE_EVENTS, STATES, UPDATE, join_call, renegotiate
from tests.harness.voice_peers import VoicePeer, wait_until
from tests.integration.flows import (
    Account,
    Users,
    accept,
    create_channel,
    create_server,
    grant_role,
    invite,
    stream_error_code,
    subscribe_settled,
)

TONES = {"ada": 440.0, "bob": 660.0, "cy": 990.0}
OVERWRITE = """mutation($i: ChannelOverwriteInput!) { setChannelOverwrite(input: $i) { __typename } }"""
MUTE_MEMBER = """mutation($i: MuteVoiceMemberInput!) { muteVoiceMember(input: $i) { __typename
  ... on VoiceChannelState { participants { userId serverMute } } ... on UserError { code field } } }"""
DISCONNECT = """mutation($c: ID!, $u: ID!) { disconnectVoiceMember(channelId: $c, userId: $u) { __typename
  ... on VoiceChannelState { participants { userId } } ... on UserError { code field } } }"""
CHANNEL_VOICE_STATES = """query($v: ID!, $t: ID!) { voice: channel(id: $v) { voiceStates { userId camera } }
  text: channel(id: $t) { voiceStates { userId } } }"""
# The stacks run with the default BEEP_VOICE_DISCONNECT_SECONDS (10 s) and check once a second.
DISCONNECT_SECONDS = 10


@dataclass
class Guild:
    server_id: str
    voice_id: str
    text_id: str
    members: dict[str, tuple[Account, GraphQLClient]]


@pytest.fixture
async def guild(stack: Stack) -> AsyncIterator[Guild]:
    users = Users(stack)
    members = {name: await users.new(name) for name in ("ada", "bob", "cy", "dee")}
    owner = members["ada"][1]
    server = await create_server(owner, "Voice Guild")
    voice = await create_channel(owner, server["id"], "lounge", kind="VOICE")
    text = await create_channel(owner, server["id"], "chat")
    code = (await invite(owner, server["id"]))["inviteCode"]
    for name in ("bob", "cy", "dee"):
        assert (await accept(members[name][1], code))["__typename"] == "Server"
    yield Guild(server["id"], voice["id"], text["id"], members)
    for _account, client in members.values():
        await client.execute(LEAVE)


def _hears(peer: VoicePeer, user_id: str, tone: float) -> bool:
    got = peer.from_(user_id)
    return got is not None and got.frames > 60 and abs(got.frequency() - tone) < tone * 0.05


async def _states(client: GraphQLClient, channel_id: str) -> list[dict[str, Any]]:
    return (await client.data(STATES, {"c": channel_id}))["voiceStates"]


async def test_three_participants_hear_each_other_see_a_camera_and_leave(stack: Stack, guild: Guild) -> None:
    (ada, ada_api), (bob, bob_api), (cy, cy_api) = (guild.members[n] for n in ("ada", "bob", "cy"))
    dee_api = guild.members["dee"][1]
    peers: list[VoicePeer] = []
    async with dee_api.subscriptions() as connection:
        watch = await subscribe_settled(connection, STATE_EVENTS, {"c": guild.voice_id})
        first = await watch.next()
        assert first["payload"]["data"]["voiceStateEvents"]["participants"] == []
        try:
            a, joined = await join_call(ada_api, guild.voice_id, TONES["ada"], camera=True)
            peers.append(a)
            assert joined["__typename"] == "VoiceSession", joined
            assert joined["iceServers"] == []  # none configured here; never a default STUN server
            b, _ = await join_call(bob_api, guild.voice_id, TONES["bob"])
            c, _ = await join_call(cy_api, guild.voice_id, TONES["cy"])
            peers += [b, c]
            states = await _states(dee_api, guild.voice_id)
            assert [s["userId"] for s in states] == [ada.user_id, bob.user_id, cy.user_id]
            assert [s["camera"] for s in states] == [True, False, False]
            # A channel list shows the call under the channel (and nothing under a text channel).
            listed = await dee_api.data(CHANNEL_VOICE_STATES, {"v": guild.voice_id, "t": guild.text_id})
            assert [(s["userId"], s["camera"]) for s in listed["voice"]["voiceStates"]] == [
                (ada.user_id, True),
                (bob.user_id, False),
                (cy.user_id, False),
            ]
            assert listed["text"]["voiceStates"] == []
            # Told by the events that others joined, the earlier ones renegotiate.
            for api, peer, me in ((ada_api, a, ada.user_id), (bob_api, b, bob.user_id)):
                await renegotiate(api, peer, states, me)
            ids = {"ada": ada.user_id, "bob": bob.user_id, "cy": cy.user_id}
            listeners = {"ada": a, "bob": b, "cy": c}
            await wait_until(
                lambda: all(
                    _hears(listeners[who], ids[other], TONES[other])
                    for who in listeners
                    for other in listeners
                    if other != who
                ),
                timeout=30,
                message="each participant hears both others at their own tones",
            )
            for peer in (b, c):
                camera = peer.from_(ada.user_id, "CAMERA")
                assert camera is not None
                await wait_until(lambda camera=camera: camera.frames > 10)
                assert camera.sizes == {(320, 240)}

            # The watcher saw each join (one event per change, the full list each time).
            seen = []
            while len(seen) < 3:
                event = (await watch.next())["payload"]["data"]["voiceStateEvents"]
                if event["participants"] and len(event["participants"]) > len(seen):
                    seen = event["participants"]
            assert [p["userId"] for p in seen] == [ada.user_id, bob.user_id, cy.user_id]

            left = (await cy_api.data(LEAVE))["leaveVoice"]
            assert left == {"__typename": "VoiceLeft", "channelId": guild.voice_id}
            await wait_until_states(dee_api, guild.voice_id, [ada.user_id, bob.user_id])
            again = (await cy_api.data(LEAVE))["leaveVoice"]
            assert (again["__typename"], again["code"]) == ("NotFoundError", "NOT_IN_CALL")
        finally:
            for peer in peers:
                await peer.close()
            for api in (ada_api, bob_api, cy_api):
                await api.execute(LEAVE)


async def wait_until_states(
    client: GraphQLClient, channel_id: str, user_ids: list[str], timeout: float = 5
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = await _states(client, channel_id)
        if [s["userId"] for s in states] == user_ids:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"voiceStates {states}, expected {user_ids}")
        await asyncio.sleep(0.2)


async def test_mute_stops_the_frames_unmute_resumes_and_a_screen_share_reaches_the_others(
    stack: Stack, guild: Guild
) -> None:
    (ada, ada_api), (bob, bob_api) = guild.members["ada"], guild.members["bob"]
    a, _ = await join_call(ada_api, guild.voice_id, TONES["ada"])
    b, _ = await join_call(bob_api, guild.voice_id, TONES["bob"])
    try:
        await renegotiate(ada_api, a, await _states(ada_api, guild.voice_id), ada.user_id)
        await wait_until(lambda: _hears(b, ada.user_id, TONES["ada"]), timeout=30)
        await wait_until(lambda: _hears(a, bob.user_id, TONES["bob"]), timeout=30)
        muted = (await ada_api.data(UPDATE, {"i": {"selfMute": True}}))["updateVoice"]
        assert muted["__typename"] == "VoiceSession" and muted["answer"] is None
        assert muted["participants"][0]["selfMute"] is True
        heard = b.from_(ada.user_id)
        assert heard is not None
        await asyncio.sleep(0.3)
        moment = time.monotonic()
        await asyncio.sleep(1.5)
        assert heard.frames_since(moment) == 0, "the server forwards nothing of a muted participant"
        await ada_api.data(UPDATE, {"i": {"selfMute": False}})
        await wait_until(lambda: heard.frames_since(moment + 1.5) > 25, timeout=10)

        # Screen share added mid-call: Ada renegotiates with it, Bob (told by the event) with a video slot.
        a.share_screen()
        shared = await renegotiate(ada_api, a)
        assert shared["participants"][0]["screen"] is True
        states = await _states(bob_api, guild.voice_id)
        await renegotiate(bob_api, b, states, bob.user_id)
        screen = b.from_(ada.user_id, "SCREEN")
        assert screen is not None
        await wait_until(lambda: screen.frames > 3, timeout=20)
        assert screen.sizes == {(640, 360)}

        # A moderator mutes Bob (Ada owns the server); Cy may not.
        cy_api = guild.members["cy"][1]
        refused = (
            await cy_api.data(
                MUTE_MEMBER, {"i": {"channelId": guild.voice_id, "userId": bob.user_id, "muted": True}}
            )
        )["muteVoiceMember"]
        assert (refused["__typename"], refused["code"]) == ("PermissionError", "FORBIDDEN")
        done = (
            await ada_api.data(
                MUTE_MEMBER, {"i": {"channelId": guild.voice_id, "userId": bob.user_id, "muted": True}}
            )
        )["muteVoiceMember"]
        assert {p["userId"]: p["serverMute"] for p in done["participants"]}[bob.user_id] is True
        from_bob = a.from_(bob.user_id)
        assert from_bob is not None
        await asyncio.sleep(0.3)
        moment = time.monotonic()
        await asyncio.sleep(1.0)
        assert from_bob.frames_since(moment) == 0
        # ...and moves him out.
        moved = (await ada_api.data(DISCONNECT, {"c": guild.voice_id, "u": bob.user_id}))[
            "disconnectVoiceMember"
        ]
        assert [p["userId"] for p in moved["participants"]] == [ada.user_id]
    finally:
        for peer in (a, b):
            await peer.close()
        for api in (ada_api, bob_api):
            await api.execute(LEAVE)


async def test_deafened_hears_no_one_and_is_not_heard_while_the_others_still_are(
    stack: Stack, guild: Guild
) -> None:
    (ada, ada_api), (bob, bob_api), (cy, cy_api) = (guild.members[n] for n in ("ada", "bob", "cy"))
    a, _ = await join_call(ada_api, guild.voice_id, TONES["ada"])
    b, _ = await join_call(bob_api, guild.voice_id, TONES["bob"])
    c, _ = await join_call(cy_api, guild.voice_id, TONES["cy"])
    try:
        for api, peer, account in ((ada_api, a, ada), (bob_api, b, bob)):
            await renegotiate(api, peer, await _states(api, guild.voice_id), account.user_id)
        await wait_until(lambda: _hears(a, bob.user_id, TONES["bob"]), timeout=30)
        await wait_until(lambda: _hears(c, bob.user_id, TONES["bob"]), timeout=30)
        await wait_until(lambda: _hears(b, ada.user_id, TONES["ada"]), timeout=30)

        deaf = (await ada_api.data(UPDATE, {"i": {"selfDeaf": True}}))["updateVoice"]
        assert deaf["__typename"] == "VoiceSession" and deaf["answer"] is None
        mine = {p["userId"]: p for p in deaf["participants"]}[ada.user_id]
        assert (mine["selfDeaf"], mine["selfMute"]) == (True, False)  # deafness silences without a mute
        to_ada, from_ada, to_cy = a.from_(bob.user_id), b.from_(ada.user_id), c.from_(bob.user_id)
        assert to_ada is not None and from_ada is not None and to_cy is not None
        await asyncio.sleep(0.3)
        moment = time.monotonic()
        await asyncio.sleep(1.5)
        assert to_ada.frames_since(moment) == 0, "a deafened participant is sent no audio"
        assert from_ada.frames_since(moment) == 0, "a deafened participant is not heard"
        assert to_cy.frames_since(moment) > 25, "the others still hear each other"
        seen = {s["userId"]: s["selfDeaf"] for s in await _states(cy_api, guild.voice_id)}
        assert seen == {ada.user_id: True, bob.user_id: False, cy.user_id: False}

        await ada_api.data(UPDATE, {"i": {"selfDeaf": False}})
        await wait_until(lambda: to_ada.frames_since(moment + 1.5) > 25, timeout=10)
        await wait_until(lambda: from_ada.frames_since(moment + 1.5) > 25, timeout=10)
        assert _hears(a, bob.user_id, TONES["bob"])
    finally:
        for peer in (a, b, c):
            await peer.close()
        for api in (ada_api, bob_api, cy_api):
            await api.execute(LEAVE)


async def test_a_killed_client_leaves_the_call_after_the_timeout(stack: Stack, guild: Guild) -> None:
    bob, _bob_api = guild.members["bob"]
    dee_api = guild.members["dee"][1]
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.harness.voice_child", stack.router_url, bob.token, guild.voice_id],
        stdout=subprocess.PIPE,
    )
    try:
        line = await asyncio.to_thread(child.stdout.readline)  # type: ignore[union-attr]
        assert line.strip() == b"joined"
        await asyncio.sleep(2)
        assert [s["userId"] for s in await _states(dee_api, guild.voice_id)] == [bob.user_id]
        child.kill()  # no leave, no DTLS goodbye: the media server notices the silence
        killed = time.monotonic()
        await wait_until_states(dee_api, guild.voice_id, [], timeout=DISCONNECT_SECONDS + 10)
        assert time.monotonic() - killed >= DISCONNECT_SECONDS - 2
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


async def test_refusals_are_typed_errors(stack: Stack, guild: Guild) -> None:
    (_ada, ada_api), (bob, bob_api), (cy, cy_api) = (guild.members[n] for n in ("ada", "bob", "cy"))
    stranger = (await Users(stack).new("eve"))[1]

    async def join(
        client: GraphQLClient, channel_id: str, offer: dict[str, Any]
    ) -> tuple[str, str | None, str | None]:
        payload = (await client.data(JOIN, {"i": {"channelId": channel_id, "offer": offer}}))["joinVoice"]
        return payload["__typename"], payload.get("code"), payload.get("field")

    probe = VoicePeer(500.0, camera=True)
    good = await probe.offer()
    await probe.close()
    assert await join(ada_api, guild.voice_id, {"sdp": "v=0\r\nnonsense"}) == (
        "ValidationError",
        "INVALID_SDP",
        "offer",
    )
    no_audio = VoicePeer(500.0)
    no_audio.pc.getTransceivers()[0].direction = "recvonly"
    offer = await no_audio.offer()
    await no_audio.close()
    assert await join(ada_api, guild.voice_id, offer) == ("ValidationError", "NO_AUDIO", "offer")
    assert await join(stranger, guild.voice_id, good) == ("NotFoundError", "NOT_FOUND", "channelId")
    assert await join(ada_api, guild.text_id, good) == ("ValidationError", "INVALID_INPUT", "channelId")
    assert await join(ada_api, "nope", good) == ("ValidationError", "INVALID_ID", "channelId")

    deny = {"channelId": guild.voice_id, "targetKind": "MEMBER", "targetId": bob.user_id}
    await ada_api.data(OVERWRITE, {"i": deny | {"allow": "0", "deny": str(int(Permission.CONNECT))}})
    assert await join(bob_api, guild.voice_id, good) == ("PermissionError", "FORBIDDEN", "channelId")
    deny = {"channelId": guild.voice_id, "targetKind": "MEMBER", "targetId": cy.user_id}
    await ada_api.data(OVERWRITE, {"i": deny | {"allow": "0", "deny": str(int(Permission.STREAM))}})
    assert await join(cy_api, guild.voice_id, good) == ("PermissionError", "FORBIDDEN", "cameraMid")
    assert await _states(stranger, guild.voice_id) is None

    # One call at a time.
    second = await create_channel(ada_api, guild.server_id, "stage", kind="VOICE")
    a, joined = await join_call(ada_api, guild.voice_id, TONES["ada"])
    try:
        assert joined["__typename"] == "VoiceSession"
        assert await join(ada_api, second["id"], good) == ("ConflictError", "ALREADY_IN_CALL", "channelId")
        # A member without SPEAK joins, suppressed: nobody hears them.
        deny = {"channelId": guild.voice_id, "targetKind": "MEMBER", "targetId": cy.user_id}
        await ada_api.data(OVERWRITE, {"i": deny | {"allow": "0", "deny": str(int(Permission.SPEAK))}})
        c, payload = await join_call(cy_api, guild.voice_id, TONES["cy"])
        try:
            assert payload["__typename"] == "VoiceSession", payload
            states = {s["userId"]: s for s in await _states(ada_api, guild.voice_id)}
            assert states[cy.user_id]["suppressed"] is True
        finally:
            await c.close()
            await cy_api.execute(LEAVE)
    finally:
        await a.close()
        await ada_api.execute(LEAVE)
    nothing = (await ada_api.data(UPDATE, {"i": {"selfMute": True}}))["updateVoice"]
    assert (nothing["__typename"], nothing["code"]) == ("NotFoundError", "NOT_IN_CALL")


async def test_negotiating_in_a_loop_is_rate_limited(stack: Stack, guild: Guild) -> None:
    """Each join or renegotiation costs the media server a peer connection's set-up: at most
    VOICE_NEGOTIATION per minute and user, counted before the offer is even read; muting is free."""
    eve_api = (await Users(stack).new("eve"))[1]
    code = (await invite(guild.members["ada"][1], guild.server_id))["inviteCode"]
    assert (await accept(eve_api, code))["__typename"] == "Server"
    bad = {"i": {"channelId": guild.voice_id, "offer": {"sdp": "v=0\r\nnot an offer"}}}
    # Redis's windows are the clock's minutes (the embedded one's start at the first hit): start early
    # in one.
    left = VOICE_NEGOTIATION.window_seconds - time.time() % VOICE_NEGOTIATION.window_seconds
    if stack.mode == "full" and left < 40:
        await asyncio.sleep(left + 0.5)
    for _ in range(VOICE_NEGOTIATION.count):
        refused = (await eve_api.data(JOIN, bad))["joinVoice"]
        assert refused["code"] == "INVALID_SDP", refused
    limited = await eve_api.execute(JOIN, bad)
    (error,) = limited.errors
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert 1 <= error["extensions"]["retryAfter"] <= VOICE_NEGOTIATION.window_seconds
    # Muting negotiates nothing: not counted (and here, not in a call).
    muted = (await eve_api.data(UPDATE, {"i": {"selfMute": True}}))["updateVoice"]
    assert muted["code"] == "NOT_IN_CALL"
    # Per user: the others still join.
    b, joined = await join_call(guild.members["bob"][1], guild.voice_id, TONES["bob"])
    await b.close()
    assert joined["__typename"] == "VoiceSession", joined


async def test_losing_speak_or_connect_mid_call_applies_at_once(stack: Stack, guild: Guild) -> None:
    (ada, ada_api), (bob, bob_api) = guild.members["ada"], guild.members["bob"]
    a, _ = await join_call(ada_api, guild.voice_id, TONES["ada"])
    b, _ = await join_call(bob_api, guild.voice_id, TONES["bob"])
    try:
        await renegotiate(ada_api, a, await _states(ada_api, guild.voice_id), ada.user_id)
        await wait_until(lambda: _hears(a, bob.user_id, TONES["bob"]), timeout=30)
        target = {"channelId": guild.voice_id, "targetKind": "MEMBER", "targetId": bob.user_id}
        await ada_api.data(OVERWRITE, {"i": target | {"allow": "0", "deny": str(int(Permission.SPEAK))}})
        deadline = time.monotonic() + 5
        while not {s["userId"]: s for s in await _states(ada_api, guild.voice_id)}[bob.user_id]["suppressed"]:
            assert time.monotonic() < deadline, "SPEAK taken away: suppressed at once"
            await asyncio.sleep(0.2)
        heard = a.from_(bob.user_id)
        assert heard is not None
        await asyncio.sleep(0.3)
        moment = time.monotonic()
        await asyncio.sleep(1.0)
        assert heard.frames_since(moment) == 0
        await ada_api.data(OVERWRITE, {"i": target | {"allow": "0", "deny": str(int(Permission.CONNECT))}})
        await wait_until_states(ada_api, guild.voice_id, [ada.user_id], timeout=5)
    finally:
        for peer in (a, b):
            await peer.close()
        for api in (ada_api, bob_api):
            await api.execute(LEAVE)


async def test_joining_muted_and_a_moderator_role(stack: Stack, guild: Guild) -> None:
    (bob, bob_api), (dee, dee_api) = guild.members["bob"], guild.members["dee"]
    await grant_role(guild.members["ada"][1], guild.server_id, dee.user_id, Permission.MUTE_MEMBERS)
    peer = VoicePeer(TONES["bob"])
    try:
        offer = await peer.offer()
        joined = (
            await bob_api.data(JOIN, {"i": {"channelId": guild.voice_id, "offer": offer, "selfMute": True}})
        )["joinVoice"]
        assert joined["__typename"] == "VoiceSession", joined
        assert [(p["userId"], p["selfMute"]) for p in joined["participants"]] == [(bob.user_id, True)]
        muted = (
            await dee_api.data(
                MUTE_MEMBER, {"i": {"channelId": guild.voice_id, "userId": bob.user_id, "muted": True}}
            )
        )["muteVoiceMember"]
        assert [(p["userId"], p["serverMute"]) for p in muted["participants"]] == [(bob.user_id, True)]
        moved = (await dee_api.data(DISCONNECT, {"c": guild.voice_id, "u": bob.user_id}))[
            "disconnectVoiceMember"
        ]
        assert (moved["__typename"], moved["code"]) == ("PermissionError", "FORBIDDEN")  # needs Move Members
        absent = (
            await dee_api.data(
                MUTE_MEMBER, {"i": {"channelId": guild.voice_id, "userId": dee.user_id, "muted": True}}
            )
        )["muteVoiceMember"]
        assert (absent["__typename"], absent["code"]) == ("NotFoundError", "NOT_IN_CALL")
    finally:
        await peer.close()
        await bob_api.execute(LEAVE)


async def test_the_voice_state_stream_is_for_viewers_only(stack: Stack, guild: Guild) -> None:
    ada_api = guild.members["ada"][1]
    dee, dee_api = guild.members["dee"]
    stranger = (await Users(stack).new("eve"))[1]
    async with stranger.subscriptions() as connection:
        refused = await connection.subscribe(STATE_EVENTS, {"c": guild.voice_id})
        assert stream_error_code(await refused.next()) == "NOT_FOUND"
    async with dee_api.subscriptions() as connection:
        watch = await subscribe_settled(connection, STATE_EVENTS, {"c": guild.voice_id})
        assert (await watch.next())["payload"]["data"]["voiceStateEvents"]["participants"] == []
        hidden = {"channelId": guild.voice_id, "targetKind": "MEMBER", "targetId": dee.user_id}
        await ada_api.data(
            OVERWRITE, {"i": hidden | {"allow": "0", "deny": str(int(Permission.VIEW_CHANNEL))}}
        )
        assert stream_error_code(await watch.next()) == "FORBIDDEN"
    assert await _states(dee_api, guild.voice_id) is None
