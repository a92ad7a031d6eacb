"""The forwarding path: encoded frames from a publisher's receiver reach subscribers' senders untouched,
and keyframe requests travel back. Real aiortc peer connections over loopback, no services."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from media.voice.forwarding import (
    FRAME_STEP,
    QUEUE_FRAMES,
    ForwardedTrack,
    Publication,
    is_vp8_keyframe,
    keyframe_requester,
    pass_keyframe_requests,
    restrict_codecs,
    tap_receiver,
)
from tests.harness.voice_peers import PatternTrack, Received, ToneTrack, consume

pytestmark = pytest.mark.unit

KEY = b"\x10\x02\x00"  # VP8 frame tag with the key-frame bit (bit 0) clear
DELTA = b"\x11\x02\x00"


# --- Publication and ForwardedTrack on their own ---------------------------------------------------------


async def test_frames_reach_every_subscriber_as_packets_with_their_timestamps() -> None:
    publication = Publication("audio")
    a, b = ForwardedTrack("audio"), ForwardedTrack("audio")
    a.switch_to(publication)
    b.switch_to(publication)
    publication.push(b"opus-1", 1000)
    publication.push(b"opus-2", 1960)
    for track in (a, b):
        first, second = await track.recv(), await track.recv()
        assert (bytes(first), bytes(second)) == (b"opus-1", b"opus-2")
        assert second.pts - first.pts == 960
        assert first.time_base.denominator == 48_000


async def test_video_waits_for_a_keyframe_and_asks_the_publisher_for_one() -> None:
    requests: list[int] = []
    publication = Publication("video", request_keyframe=lambda: requests.append(1))
    track = ForwardedTrack("video")
    track.switch_to(publication)
    assert requests == [1]  # a new subscriber asks at once
    publication.push(DELTA, 0)
    publication.push(KEY, 3000)
    publication.push(DELTA, 6000)
    assert bytes(await track.recv()) == KEY
    assert bytes(await track.recv()) == DELTA
    track.keyframe_requested()  # the subscriber's decoder lost the picture (a PLI reached its sender)
    assert requests == [1, 1]


async def test_a_paused_publication_forwards_nothing_until_resumed() -> None:
    requests: list[int] = []
    publication = Publication("video", request_keyframe=lambda: requests.append(1))
    track = ForwardedTrack("video")
    track.switch_to(publication)
    publication.paused = True
    publication.push(KEY, 0)
    assert track._queue.empty()
    assert publication.frames_in == 1
    publication.resume()
    assert len(requests) == 2  # resuming asks for a keyframe
    publication.push(KEY, 3000)
    assert bytes(await track.recv()) == KEY


async def test_a_deafened_subscriber_gets_nothing_while_the_others_do() -> None:
    publication = Publication("audio")
    deaf, hearing = ForwardedTrack("audio"), ForwardedTrack("audio")
    for track in (deaf, hearing):
        track.switch_to(publication)
    deaf.deafened = True
    publication.push(b"opus-1", 1000)
    assert deaf._queue.empty()
    assert bytes(await hearing.recv()) == b"opus-1"
    deaf.deafened = False
    publication.push(b"opus-2", 1960)
    assert bytes(await deaf.recv()) == b"opus-2"


async def test_switching_source_keeps_timestamps_moving_forward() -> None:
    first, second = Publication("audio"), Publication("audio")
    track = ForwardedTrack("audio")
    track.switch_to(first)
    first.push(b"a", 500_000)
    track.switch_to(second)
    second.push(b"b", 7)  # another sender's clock
    first.push(b"late", 500_960)  # detached: not forwarded
    one, two = await track.recv(), await track.recv()
    assert (bytes(one), bytes(two)) == (b"a", b"b")
    assert two.pts == one.pts + FRAME_STEP["audio"]
    assert track._queue.empty()


async def test_a_slow_subscriber_loses_the_oldest_frames_not_memory() -> None:
    requests: list[int] = []
    publication = Publication("video", request_keyframe=lambda: requests.append(1))
    track = ForwardedTrack("video")
    track.switch_to(publication)
    publication.push(KEY, 0)
    for i in range(1, QUEUE_FRAMES["video"] + 5):
        publication.push(DELTA, i * 3000)
    assert track._queue.qsize() <= QUEUE_FRAMES["video"]
    assert track.frames_dropped > 0
    assert len(requests) >= 2  # lost deltas: wait for, and ask for, a keyframe


def test_vp8_keyframe_bit() -> None:
    assert is_vp8_keyframe(KEY)
    assert not is_vp8_keyframe(DELTA)
    assert not is_vp8_keyframe(b"")


def test_only_matching_kinds_connect() -> None:
    with pytest.raises(ValueError):
        ForwardedTrack("video").switch_to(Publication("audio"))
    with pytest.raises(ValueError):
        Publication("data")


# --- through real aiortc peer connections -----------------------------------------------------------------


async def _negotiate(client: RTCPeerConnection, server: RTCPeerConnection, prepare: Any) -> None:
    await client.setLocalDescription(await client.createOffer())
    await server.setRemoteDescription(RTCSessionDescription(sdp=client.localDescription.sdp, type="offer"))
    prepare(server)
    await server.setLocalDescription(await server.createAnswer())
    await client.setRemoteDescription(server.localDescription)


@contextlib.asynccontextmanager
async def _peers(n: int) -> AsyncIterator[list[RTCPeerConnection]]:
    peers = [RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(n)]
    try:
        yield peers
    finally:
        for pc in peers:
            await pc.close()


async def _wait_for(predicate: Any, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def test_an_sfu_forwards_encoded_audio_and_video_and_passes_keyframe_requests_back() -> None:
    async with _peers(4) as (publisher, sfu_in, subscriber, sfu_out):
        tone, camera = ToneTrack(660), PatternTrack(fps=15)
        publisher.addTransceiver(tone, direction="sendonly")
        publisher.addTransceiver(camera, direction="sendonly")
        audio, video = Publication("audio"), Publication("video")

        def tap(server: RTCPeerConnection) -> None:
            for transceiver, publication in zip(server.getTransceivers(), (audio, video), strict=True):
                assert restrict_codecs(transceiver)
                tap_receiver(transceiver.receiver, publication)
                if publication.kind == "video":
                    publication._request_keyframe = keyframe_requester(transceiver.receiver)

        await _negotiate(publisher, sfu_in, tap)

        heard, seen = Received("audio"), Received("video")
        subscriber.addTransceiver("audio", direction="recvonly")
        subscriber.addTransceiver("video", direction="recvonly")
        out_audio, out_video = ForwardedTrack("audio"), ForwardedTrack("video")

        def attach(server: RTCPeerConnection) -> None:
            for transceiver, track in zip(server.getTransceivers(), (out_audio, out_video), strict=True):
                assert restrict_codecs(transceiver)
                transceiver.direction = "sendonly"
                transceiver.sender.replaceTrack(track)
                pass_keyframe_requests(transceiver.sender, track)

        await _negotiate(subscriber, sfu_out, attach)
        tasks = [
            asyncio.ensure_future(consume(t.receiver.track, into))
            for t, into in zip(subscriber.getTransceivers(), (heard, seen), strict=True)
        ]
        keyframes_forced: list[int] = []
        publisher_video_sender = publisher.getTransceivers()[1].sender
        original = publisher_video_sender._send_keyframe

        def counted() -> None:
            keyframes_forced.append(1)
            original()

        publisher_video_sender._send_keyframe = counted  # type: ignore[method-assign]
        out_audio.switch_to(audio)
        out_video.switch_to(video)
        try:
            await _wait_for(lambda: heard.frames > 100 and seen.frames > 20)
            assert abs(heard.frequency() - 660) < 660 * 0.05
            assert seen.sizes == {(320, 240)}
            # Nothing was decoded on the way: the SFU's receiver tracks never got a frame.
            assert all(t.receiver.track._queue.qsize() == 0 for t in sfu_in.getTransceivers())
            assert video.frames_in > 0 and out_video.frames_out > 0

            # A PLI from the subscriber (its decoder lost the picture) travels back to the publisher.
            before = len(keyframes_forced)
            receiver = subscriber.getTransceivers()[1].receiver
            from media.voice.forwarding import media_ssrcs

            for ssrc in media_ssrcs(receiver):
                await receiver._send_rtcp_pli(ssrc)
            await _wait_for(lambda: len(keyframes_forced) > before, timeout=5)
            # A subscriber that arrives late asks for a keyframe at once, and gets pictures from it.
            late = ForwardedTrack("video")
            before = len(keyframes_forced)
            late.switch_to(video)
            await _wait_for(lambda: len(keyframes_forced) > before, timeout=5)
            await _wait_for(lambda: late._queue.qsize() > 0, timeout=5)
            assert is_vp8_keyframe(bytes(await late.recv()))
            late.stop()
        finally:
            for task in tasks:
                task.cancel()
