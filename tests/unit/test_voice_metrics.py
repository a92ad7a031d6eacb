"""The call hosts' metrics count what happens: refused joins by code, frames in, out and dropped."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from media.voice.errors import VoiceRefused
from media.voice.forwarding import ForwardedTrack, Publication
from media.voice.hub import VoiceHub
from media.voice.room import VoiceConfig

pytestmark = pytest.mark.unit


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _quiet(*_args: object) -> None:
    return None


async def test_a_refused_join_is_counted_by_its_code() -> None:
    hub = VoiceHub(VoiceConfig(), _quiet)
    before = sample("beep_voice_joins_total", outcome="INVALID_SDP")
    with pytest.raises(VoiceRefused):
        await hub.join(
            1, 2, "not an offer", camera_mid=None, screen_mid=None, can_speak=True, can_stream=True
        )
    assert sample("beep_voice_joins_total", outcome="INVALID_SDP") == before + 1
    assert sample("beep_voice_calls") >= 0 and hub.participant_count() == 0


async def test_frames_received_forwarded_and_dropped() -> None:
    received = sample("beep_voice_frames_received_total", kind="audio")
    forwarded = sample("beep_voice_frames_forwarded_total", kind="audio")
    dropped = sample("beep_voice_frames_dropped_total", kind="audio")
    publication = Publication("audio")
    track = ForwardedTrack("audio")
    track.switch_to(publication)
    for timestamp in range(0, 60 * 960, 960):  # 60 frames into a queue of 50: 10 dropped
        publication.push(b"\xf8\xff\xfe", timestamp)
    for _ in range(5):
        await track.recv()
    assert sample("beep_voice_frames_received_total", kind="audio") == received + 60
    assert sample("beep_voice_frames_dropped_total", kind="audio") == dropped + 10
    assert sample("beep_voice_frames_forwarded_total", kind="audio") == forwarded + 5
    track.stop()
