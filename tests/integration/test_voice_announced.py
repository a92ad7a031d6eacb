"""BEEP_VOICE_ANNOUNCED_ADDRESS and BEEP_VOICE_HOST_ADDRESSES through the API: a stack whose media server
sits behind a 1:1 NAT (emulated in user space, tests/harness/nat.py: public 127.0.0.1, private this
machine's real IPv4 address) answers `joinVoice` with host candidates at the public address only, and a
client whose own candidates the server cannot reach connects through the NAT."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.nat import OneToOneNat, host_candidates, private_address, without_candidates
from tests.harness.stack import Stack, start_embedded
from tests.harness.voice_api import JOIN, LEAVE, to_answer
from tests.harness.voice_peers import VoicePeer, wait_until
from tests.integration.flows import Users, create_channel, create_server

pytestmark = pytest.mark.embedded

PUBLIC = "127.0.0.1"


@pytest.fixture(scope="module")
def natted_stack() -> Iterator[Stack]:
    stack = start_embedded(
        {"BEEP_VOICE_ANNOUNCED_ADDRESS": PUBLIC, "BEEP_VOICE_HOST_ADDRESSES": private_address()}
    )
    yield stack
    stack.stop()


async def test_join_answers_with_the_announced_address_and_connects_through_the_nat(
    natted_stack: Stack,
) -> None:
    _ada, as_ada = await Users(natted_stack).new("ada")
    server = await create_server(as_ada, "Behind NAT")
    voice = await create_channel(as_ada, server["id"], "lounge", kind="VOICE")
    peer = VoicePeer(440.0)
    nat = OneToOneNat(PUBLIC, private_address())
    try:
        offer = await peer.offer()
        offer["sdp"] = without_candidates(offer["sdp"])
        session = (await as_ada.data(JOIN, {"i": {"channelId": voice["id"], "offer": offer}}))["joinVoice"]
        assert session["__typename"] == "VoiceSession", session
        found = host_candidates(session["answer"])
        assert len(found) == 1 and next(iter(found))[0] == PUBLIC, session["answer"]
        assert private_address() not in session["answer"]
        for _address, port in found:
            await nat.open(port)
        await peer.accept(to_answer(session))
        await wait_until(lambda: peer.pc.connectionState == "connected", timeout=15)
        assert nat.forwarded > 0
    finally:
        await as_ada.execute(LEAVE)
        await peer.close()
        nat.close()
