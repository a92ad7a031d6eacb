"""The media server behind a 1:1 NAT, with real aiortc peers. The NAT is emulated in user space
(tests/harness/nat.py): its public address is 127.0.0.1 (aiortc never gathers on it), its private side
this machine's real IPv4 address, and each port the server's answer names is mapped `127.0.0.1:P` →
`private:P`. The hub announces 127.0.0.1 and only the private address's candidates; clients offer no
candidate the server could reach (as behind their own NAT), so the only way in is the announced address.
Through the NAT the call works; without it nothing connects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from media.voice.announce import Announcement
from media.voice.errors import Refusal, VoiceRefused
from media.voice.hub import VoiceHub
from media.voice.room import Answer, ParticipantState, VoiceConfig
from tests.harness.nat import OneToOneNat, host_candidates, private_address, without_candidates
from tests.harness.voice_peers import VoicePeer, answer_fields, hears, wait_until

pytestmark = pytest.mark.unit

PUBLIC = "127.0.0.1"
TONES = {1: 440.0, 2: 660.0}
AUDIO_ONLY: dict[str, Any] = {"camera_mid": None, "screen_mid": None, "can_speak": True, "can_stream": True}


class NattedCall:
    def __init__(self, announce: Announcement, nat: OneToOneNat | None) -> None:
        self.hub = VoiceHub(VoiceConfig(announce=announce, negotiation_timeout=10.0), self._announce)
        self.nat = nat
        self.peers: dict[int, VoicePeer] = {}
        self.answers: list[Answer] = []

    async def _announce(self, channel_id: int, states: list[ParticipantState]) -> None:
        pass

    async def _through_nat(self, answer: Answer) -> dict[str, Any]:
        self.answers.append(answer)
        if self.nat is not None:
            for _address, port in host_candidates(answer.sdp):
                await self.nat.open(port)
        return answer_fields(answer)

    async def join(self, user_id: int) -> VoicePeer:
        peer = self.peers[user_id] = VoicePeer(TONES[user_id])
        offer = without_candidates((await peer.offer())["sdp"])
        answer = await self.hub.join(7, user_id, offer, **AUDIO_ONLY)
        await peer.accept(await self._through_nat(answer))
        if answer.audio_slots_needed:  # as a client does: offer the slots asked for
            await self.renegotiate(user_id)
        return peer

    async def renegotiate(self, user_id: int) -> None:
        peer = self.peers[user_id]
        peer.expect([(False, False) for s in self.hub.states(7) if s.user_id != user_id])
        offer = without_candidates((await peer.offer())["sdp"])
        _channel, answer = await self.hub.update(user_id, offer, self_mute=None, **AUDIO_ONLY)
        assert answer is not None
        await peer.accept(await self._through_nat(answer))

    async def close(self) -> None:
        for peer in self.peers.values():
            await peer.close()
        await self.hub.close()
        if self.nat is not None:
            self.nat.close()


@pytest.fixture
async def natted() -> AsyncIterator[NattedCall]:
    private = private_address()
    call = NattedCall(Announcement.of(PUBLIC, [private]), OneToOneNat(PUBLIC, private))
    yield call
    await call.close()


@pytest.fixture
async def unmapped() -> AsyncIterator[NattedCall]:
    call = NattedCall(Announcement.of(PUBLIC, [private_address()]), None)
    yield call
    await call.close()


async def test_clients_reach_the_media_server_at_its_announced_address_through_the_nat(
    natted: NattedCall,
) -> None:
    a = await natted.join(1)
    b = await natted.join(2)
    await natted.renegotiate(1)  # told that 2 joined: a slot for 2
    # Every answer announced one host candidate per m-line, at the public address only.
    for answer in natted.answers:
        found = host_candidates(answer.sdp)
        assert len(found) == 1 and next(iter(found))[0] == PUBLIC
        assert private_address() not in answer.sdp
        assert all(line == f"c=IN IP4 {PUBLIC}" for line in answer.sdp.splitlines() if line.startswith("c="))
    await wait_until(
        lambda: hears(a, 2, TONES[2]) and hears(b, 1, TONES[1]),
        timeout=15,
        message="each hears the other through the NAT",
    )
    assert a.pc.connectionState == b.pc.connectionState == "connected"
    assert natted.nat is not None and natted.nat.forwarded > 100  # media went through the mapping


async def test_without_the_nat_nothing_connects(unmapped: NattedCall) -> None:
    a = await unmapped.join(1)
    b = await unmapped.join(2)
    await unmapped.renegotiate(1)
    for answer in unmapped.answers:
        assert {address for address, _port in host_candidates(answer.sdp)} == {PUBLIC}
    # Through the NAT this takes about a second; without it, the announced address leads nowhere.
    await asyncio.sleep(6)
    for peer in (a, b):
        assert peer.pc.iceConnectionState not in ("connected", "completed")
        assert peer.pc.connectionState != "connected"
        assert all(r.frames == 0 for r in peer.received.values())
    room = unmapped.hub.room(7)
    assert room is not None
    assert all(p.pc.connectionState != "connected" for p in room.participants.values())


async def test_an_answer_without_any_candidate_is_refused_and_the_call_is_untouched() -> None:
    hub = VoiceHub(
        VoiceConfig(announce=Announcement.of(PUBLIC, ["192.0.2.222"])),  # not this machine's
        lambda _channel, _states: asyncio.sleep(0),
    )
    peer = VoicePeer(440.0)
    try:
        offer = await peer.offer()
        with pytest.raises(VoiceRefused) as refused:
            await hub.join(7, 1, offer["sdp"], **AUDIO_ONLY)
        assert refused.value.reason == Refusal.CONNECTION_FAILED
        assert "no network address" in refused.value.message
        assert hub.channel_of(1) is None and hub.room(7) is None and hub.states(7) == []
    finally:
        await peer.close()
        await hub.close()
