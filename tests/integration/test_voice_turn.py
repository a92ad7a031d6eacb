"""A participant that may only use TURN (iceTransportPolicy "relay", as behind a strict firewall) joins a
call through coturn, started here, with the time-limited credentials the API hands out; a wrong
credential never connects (aiortc raises nothing: the test bounds the wait)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiortc import RTCIceServer

from media.voice.hub import VoiceHub
from media.voice.ice import client_ice_servers, turn_credentials
from media.voice.room import ParticipantState, VoiceConfig
from tests.harness.coturn import CoturnServer
from tests.harness.voice_peers import VoicePeer, answer_fields, wait_until

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def coturn() -> Iterator[CoturnServer]:
    server = CoturnServer().start()
    yield server
    server.stop()


async def _quiet(_channel: int, _states: list[ParticipantState]) -> None:
    return None


async def _join(hub: VoiceHub, user_id: int, peer: VoicePeer) -> None:
    offer = await peer.offer()
    answer = await hub.join(
        7, user_id, offer["sdp"], camera_mid=None, screen_mid=None, can_speak=True, can_stream=True
    )
    await peer.accept(answer_fields(answer))
    if answer.audio_slots_needed:
        offer = await peer.offer()
        _channel, again = await hub.update(
            user_id,
            offer["sdp"],
            camera_mid=None,
            screen_mid=None,
            can_speak=True,
            can_stream=True,
            self_mute=None,
        )
        assert again is not None
        await peer.accept(answer_fields(again))


async def test_a_relay_only_participant_is_heard_through_coturn(coturn: CoturnServer) -> None:
    hub = VoiceHub(VoiceConfig(), _quiet)
    (server,) = client_ice_servers((), (coturn.url,), coturn.secret, 2, 600)
    relayed = [RTCIceServer(urls=list(server.urls), username=server.username, credential=server.credential)]
    listener = VoicePeer(440.0)
    talker = VoicePeer(880.0, ice_servers=relayed, force_relay=True)
    try:
        await _join(hub, 1, listener)
        await _join(hub, 2, talker)
        sdp = talker.pc.localDescription.sdp
        assert " typ relay " in sdp and " typ host " not in sdp
        await _join_again(hub, listener)
        await wait_until(lambda: (listener.from_(2) or _Empty()).frames > 60, timeout=30)
        assert abs(listener.from_(2).frequency() - 880.0) < 880 * 0.05  # type: ignore[union-attr]
        assert talker.pc.connectionState == "connected"
    finally:
        await listener.close()
        await talker.close()
        await hub.close()


class _Empty:
    frames = 0


async def _join_again(hub: VoiceHub, peer: VoicePeer) -> None:
    peer.expect([(False, False)])
    offer = await peer.offer()
    _channel, answer = await hub.update(
        1, offer["sdp"], camera_mid=None, screen_mid=None, can_speak=True, can_stream=True, self_mute=None
    )
    assert answer is not None
    await peer.accept(answer_fields(answer))


async def test_a_wrong_turn_credential_never_connects(coturn: CoturnServer) -> None:
    hub = VoiceHub(VoiceConfig(), _quiet)
    username, _right = turn_credentials(coturn.secret, 3, 600)
    wrong = [RTCIceServer(urls=[coturn.url], username=username, credential="not-the-password")]
    peer = VoicePeer(440.0, ice_servers=wrong, force_relay=True)
    try:
        offer = await peer.offer()
        assert " typ relay " not in peer.pc.localDescription.sdp  # no allocation without the credential
        answer = await hub.join(
            7, 3, offer["sdp"], camera_mid=None, screen_mid=None, can_speak=True, can_stream=True
        )
        await peer.accept(answer_fields(answer))
        await asyncio.sleep(3)  # proves no connection forms within a window: keep
        assert peer.pc.connectionState != "connected"
    finally:
        await peer.close()
        await hub.close()
