"""The voice API as a client uses it: joinVoice / updateVoice with a `VoicePeer`'s offers."""

from __future__ import annotations

from typing import Any

from tests.harness.client import GraphQLClient
from tests.harness.voice_peers import VoicePeer

SESSION = """__typename
  ... on VoiceSession { channelId answer audioSlotsNeeded videoSlotsNeeded streams { mid userId source }
    iceServers { urls username credential }
    participants { userId selfMute selfDeaf serverMute camera screen } }
  ... on UserError { code message field }"""
JOIN = f"mutation($i: JoinVoiceInput!) {{ joinVoice(input: $i) {{ {SESSION} }} }}"
UPDATE = f"mutation($i: UpdateVoiceInput!) {{ updateVoice(input: $i) {{ {SESSION} }} }}"
LEAVE = """mutation { leaveVoice { __typename ... on VoiceLeft { channelId }
  ... on UserError { code message field } } }"""
STATES = """query($c: ID!) {
  voiceStates(channelId: $c) { userId selfMute selfDeaf serverMute suppressed camera screen } }"""
STATE_EVENTS = """subscription($c: ID!) { voiceStateEvents(channelId: $c) {
  channelId participants { userId selfMute serverMute suppressed camera screen } } }"""


def to_answer(session: dict[str, Any]) -> dict[str, Any]:
    return {
        "sdp": session["answer"],
        "audioSlotsNeeded": session["audioSlotsNeeded"],
        "videoSlotsNeeded": session["videoSlotsNeeded"],
        "streams": session["streams"],
    }


async def join_call(
    client: GraphQLClient, channel_id: str, tone: float, *, camera: bool = False, **peer: Any
) -> tuple[VoicePeer, dict[str, Any]]:
    """Join as a client does: offer, apply the answer, and offer again with the slots it asked for."""
    voice = VoicePeer(tone, camera=camera, **peer)
    payload = (await client.data(JOIN, {"i": {"channelId": channel_id, "offer": await voice.offer()}}))[
        "joinVoice"
    ]
    if payload["__typename"] != "VoiceSession":
        await voice.close()
        return voice, payload
    await voice.accept(to_answer(payload))
    if payload["audioSlotsNeeded"] or payload["videoSlotsNeeded"]:
        payload = await renegotiate(client, voice)
    return voice, payload


async def renegotiate(
    client: GraphQLClient, voice: VoicePeer, states: list[dict[str, Any]] | None = None, me: str | None = None
) -> dict[str, Any]:
    """Offer again (after a voice-state event: `states` without `me` says how many slots to offer)."""
    if states is not None:
        voice.expect([(s["camera"], s["screen"]) for s in states if s["userId"] != me])
    payload = (await client.data(UPDATE, {"i": {"offer": await voice.offer()}}))["updateVoice"]
    assert payload["__typename"] == "VoiceSession", payload
    await voice.accept(to_answer(payload))
    return payload
