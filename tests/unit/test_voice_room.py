"""A call run by the media hub directly (no API): real aiortc peers over loopback join, hear each other's
tones, renegotiate for new streams, mute, leave, vanish; and bad offers are refused with reasons."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from media.voice.errors import Refusal, VoiceRefused
from media.voice.hub import VoiceHub, owner_of
from media.voice.room import ParticipantState, VoiceConfig
from media.voice.sdp import read_offer
from tests.harness.voice_peers import VoicePeer, answer_fields, hears, wait_until

pytestmark = pytest.mark.unit

TONES = {1: 440.0, 2: 660.0, 3: 990.0}


class Harness:
    def __init__(self, **config: Any) -> None:
        self.announced: list[tuple[int, list[ParticipantState]]] = []
        self.hub = VoiceHub(VoiceConfig(**config), self._announce)
        self.peers: dict[int, VoicePeer] = {}

    async def _announce(self, channel_id: int, states: list[ParticipantState]) -> None:
        self.announced.append((channel_id, states))

    async def join(self, user_id: int, channel_id: int = 7, **kw: Any) -> VoicePeer:
        peer = self.peers[user_id] = VoicePeer(TONES.get(user_id, 550.0), camera=kw.pop("camera", False))
        offer = await peer.offer()
        started = time.monotonic()
        answer = await self.hub.join(
            channel_id,
            user_id,
            offer["sdp"],
            camera_mid=offer["cameraMid"],
            screen_mid=offer["screenMid"],
            can_speak=kw.get("can_speak", True),
            can_stream=kw.get("can_stream", True),
        )
        # Explicit (empty) ICE servers: no 5 s stall on an unreachable default STUN server.
        assert time.monotonic() - started < 3
        await peer.accept(answer_fields(answer))
        if answer.audio_slots_needed or answer.video_slots_needed:  # as a client does: offer the slots asked
            await self.renegotiate(user_id, channel_id=channel_id)
        return peer

    async def renegotiate(self, user_id: int, **kw: Any) -> None:
        peer = self.peers[user_id]
        states = self.hub.states(kw.get("channel_id", 7))
        peer.expect([(s.camera, s.screen) for s in states if s.user_id != user_id])
        offer = await peer.offer()
        _channel, answer = await self.hub.update(
            user_id,
            offer["sdp"],
            camera_mid=offer["cameraMid"],
            screen_mid=offer["screenMid"],
            can_speak=kw.get("can_speak", True),
            can_stream=True,
            self_mute=kw.get("self_mute"),
        )
        assert answer is not None
        await peer.accept(answer_fields(answer))

    async def close(self) -> None:
        for peer in self.peers.values():
            await peer.close()
        await self.hub.close()


@pytest.fixture
async def call() -> AsyncIterator[Harness]:
    harness = Harness(disconnect_timeout=3.0, check_interval=0.5)
    yield harness
    await harness.close()


def _hears(peer: VoicePeer, user_id: int) -> bool:
    return hears(peer, user_id, TONES[user_id])


async def test_three_participants_each_hear_the_other_two_and_see_a_camera(call: Harness) -> None:
    a = await call.join(1, camera=True)
    assert (a.audio_needed, a.video_needed) == (0, 0)
    b = await call.join(2)
    c = await call.join(3)
    assert (c.audio_needed, c.video_needed) == (2, 1)
    for user_id in (1, 2):  # the others renegotiate when told someone joined
        await call.renegotiate(user_id)
    await wait_until(
        lambda: all(_hears(p, u) for p, others in ((a, (2, 3)), (b, (1, 3)), (c, (1, 2))) for u in others),
        message="each participant hears the other two, each at its own tone",
    )
    for peer in (b, c):
        camera = peer.from_(1, "CAMERA")
        assert camera is not None
        await wait_until(lambda camera=camera: camera.frames > 10)
        assert camera.sizes == {(320, 240)}
    assert [s.user_id for s in call.hub.states(7)] == [1, 2, 3]
    assert call.hub.states(7)[0].camera


async def test_self_mute_stops_forwarding_and_unmute_resumes(call: Harness) -> None:
    a = await call.join(1)
    b = await call.join(2)
    await call.renegotiate(1)
    await wait_until(lambda: _hears(b, 1))
    await call.renegotiate(1, self_mute=True)  # the client keeps sending: the server drops it
    await asyncio.sleep(0.3)
    heard = b.from_(1)
    assert heard is not None
    moment = time.monotonic()
    await asyncio.sleep(1.0)
    assert heard.frames_since(moment) == 0
    assert call.hub.states(7)[0].self_mute
    await call.renegotiate(1, self_mute=False)
    await wait_until(lambda: heard.frames_since(moment + 1.0) > 20)
    assert _hears(a, 2)


async def test_a_screen_shared_mid_call_reaches_the_others(call: Harness) -> None:
    a = await call.join(1)
    b = await call.join(2)
    await call.renegotiate(1)
    a.share_screen()
    await call.renegotiate(1)
    assert call.hub.states(7)[0].screen
    await call.renegotiate(2)  # told that 1 shares a screen
    screen = b.from_(1, "SCREEN")
    assert screen is not None
    await wait_until(lambda: screen.frames > 3)
    assert screen.sizes == {(640, 360)}


async def test_leaving_and_vanishing_are_announced_and_the_last_out_ends_the_call(call: Harness) -> None:
    await call.join(1)
    b = await call.join(2)
    await call.join(3)
    assert await call.hub.leave(3) == 7
    assert [s.user_id for s in call.hub.states(7)] == [1, 2]
    await b.pc.close()  # killed: no BYE, no leave
    await wait_until(lambda: [s.user_id for s in call.hub.states(7)] == [1], timeout=10)
    assert call.hub.channel_of(2) is None
    await call.hub.leave(1)
    assert call.hub.room(7) is None
    assert call.announced[-1] == (7, [])


async def test_one_call_at_a_time_and_the_room_limit(call: Harness) -> None:
    first = await call.join(1, channel_id=7)
    await call.join(2, channel_id=7)
    again = await call.join(1, channel_id=7)  # the same call again (a reloaded page): replaces the old
    assert first.pc is not again.pc
    assert [s.user_id for s in call.hub.states(7)] == [2, 1]
    with pytest.raises(VoiceRefused) as second:
        await call.join(1, channel_id=8)
    assert second.value.reason is Refusal.ALREADY_IN_CALL
    small = Harness(room_limit=1)
    try:
        await small.join(1)
        with pytest.raises(VoiceRefused) as full:
            await small.join(2)
        assert full.value.reason is Refusal.ROOM_FULL
        assert small.hub.channel_of(2) is None
    finally:
        await small.close()


async def test_video_without_stream_is_refused(call: Harness) -> None:
    with pytest.raises(VoiceRefused) as refused:
        await call.join(1, camera=True, can_stream=False)
    assert refused.value.reason is Refusal.STREAM_FORBIDDEN
    assert call.hub.channel_of(1) is None


async def test_without_speak_audio_is_not_forwarded(call: Harness) -> None:
    await call.join(1, can_speak=False)
    b = await call.join(2)
    assert b.from_(1) is not None
    await call.renegotiate(1, can_speak=False)
    await wait_until(lambda: _hears(call.peers[1], 2))  # the connection works both ways
    await asyncio.sleep(1.0)
    assert b.from_(1).frames == 0  # type: ignore[union-attr]
    assert call.hub.states(7)[0].suppressed


BAD = [
    ("", Refusal.INVALID_SDP),
    ("hello", Refusal.INVALID_SDP),
    ("v=0\r\n" * 20_000, Refusal.INVALID_SDP),
]


@pytest.mark.parametrize(("offer", "reason"), BAD)
def test_malformed_offers_are_refused(offer: str, reason: Refusal) -> None:
    with pytest.raises(VoiceRefused) as refused:
        read_offer(offer)
    assert refused.value.reason is reason


async def test_an_offer_without_audio_or_with_a_wrong_camera_is_refused() -> None:
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    with pytest.raises(VoiceRefused) as refused:
        read_offer(pc.localDescription.sdp)
    assert refused.value.reason is Refusal.NO_AUDIO
    with pytest.raises(VoiceRefused) as wrong:
        read_offer(pc.localDescription.sdp, camera_mid="0")  # a receive-only line is no camera
    assert wrong.value.field == "cameraMid"
    await pc.close()


def test_every_replica_picks_the_same_owner_and_only_a_removed_nodes_calls_move() -> None:
    nodes = ["http://media-0", "http://media-1", "http://media-2"]
    owners = {c: owner_of(c, nodes) for c in range(1000)}
    assert owners == {c: owner_of(c, list(reversed(nodes))) for c in range(1000)}
    assert set(owners.values()) == set(nodes)
    fewer = {c: owner_of(c, nodes[:2]) for c in range(1000)}
    assert all(fewer[c] == owners[c] for c in owners if owners[c] != "http://media-2")


def _mutations(sdp: str) -> list[str]:
    """Valid-looking offers broken in the places aiortc reads after our parser."""
    lines = sdp.split("\r\n")

    def without(prefix: str) -> str:
        return "\r\n".join(line for line in lines if not line.startswith(prefix))

    def replaced(prefix: str, value: str) -> str:
        return "\r\n".join(value if line.startswith(prefix) else line for line in lines)

    return [
        replaced("a=fingerprint:", "a=fingerprint:sha-256 ZZ"),
        replaced("a=setup:", "a=setup:sideways"),
        without("a=ice-pwd:"),
        replaced("a=group:BUNDLE", "a=group:BUNDLE 0 7 9"),
        replaced("a=rtpmap:", "a=rtpmap:96 opus/abc/2"),
        replaced("a=ssrc:", "a=ssrc:notanumber cname:x"),
        replaced("m=audio", "m=audio 9 UDP/TLS/RTP/SAVPF"),
        replaced("c=IN", "c=IN IP9 nowhere"),
        sdp.replace("a=mid:0", "a=mid:" + "x" * 5000),
        sdp + "a=candidate:garbage\r\n",
    ]


async def test_broken_offers_are_refused_and_the_call_goes_on(call: Harness) -> None:
    probe = VoicePeer(500.0, camera=True)
    offer = await probe.offer()
    await probe.close()
    refused = []
    for number, broken in enumerate(_mutations(offer["sdp"])):
        try:
            await call.hub.join(
                9, 100 + number, broken, camera_mid=None, screen_mid=None, can_speak=True, can_stream=True
            )
        except VoiceRefused as refusal:
            assert refusal.reason is Refusal.INVALID_SDP
            refused.append(number)
        else:  # a bad fingerprint or bundle joins, and its connection then fails: harmless
            await call.hub.leave(100 + number)
        assert call.hub.channel_of(100 + number) is None
    assert refused == [1, 2, 4, 5, 6, 7, 8, 9]
    assert call.hub.states(9) == []
    a = await call.join(1, channel_id=9)
    b = await call.join(2, channel_id=9)
    await call.renegotiate(1, channel_id=9)
    await wait_until(lambda: _hears(a, 2) and _hears(b, 1))
