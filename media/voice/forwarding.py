"""Forwarding a publisher's encoded frames to its subscribers without decoding or re-encoding them.

aiortc's public `MediaRelay` decodes each source once and encodes it again for every listener (the cost
grows with N²). Here the receiver's reassembled frames (the jitter buffer's output, before the decoder)
are handed, as `av.Packet`s, to every subscriber's sender, whose codec only packetizes them; keyframe
requests (PLI/FIR) of a subscriber are passed back to the publisher as a PLI.

This leans on aiortc internals, so aiortc is pinned (pyproject.toml) and they are all in this module:
- `RTCRtpReceiver.__decoder_queue` (a `queue.Queue` of `(codec, JitterFrame)`, `None` to stop): replaced
  before `receive()` starts the decoder thread, so frames reach `Publication.push` instead of a decoder;
- `RTCRtpReceiver._send_rtcp_pli(ssrc)` and its `__remote_streams` / `__rtx_ssrc` (the media SSRCs);
- `RTCRtpSender._send_keyframe()` (called on PLI/FIR), wrapped to reach the publisher;
- `RTCRtpTransceiver._codecs` (narrowed to Opus and VP8: every subscriber must take the publisher's codec);
- a sender packs (`Encoder.pack`) what a track's `recv()` returns when it is an `av.Packet`.
`tests/unit/test_voice_forwarding.py` exercises each of them against real aiortc objects.
"""

from __future__ import annotations

import asyncio
import logging
import queue
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver

from media.voice import metrics

log = logging.getLogger("beep.voice.forwarding")

AUDIO_CLOCK = 48_000  # Opus
VIDEO_CLOCK = 90_000  # VP8
FORWARDED_MIME_TYPES = {"audio": "audio/opus", "video": "video/VP8"}
# A subscriber that falls this many frames behind loses the oldest (a video one then waits for a keyframe).
QUEUE_FRAMES = {"audio": 50, "video": 30}
# Typical frame durations, to keep a subscriber's timestamps moving forward when its source changes.
FRAME_STEP = {"audio": 960, "video": 3000}


def is_vp8_keyframe(data: bytes) -> bool:
    """RFC 6386 §9.1: the frame tag's lowest bit is 0 for a key frame."""
    return bool(data) and data[0] & 0x01 == 0


class Publication:
    """One published track (a participant's microphone, camera or screen): frames pushed in by the tap on
    its receiver, fanned out to its subscribers' `ForwardedTrack`s."""

    def __init__(self, kind: str, request_keyframe: Callable[[], None] = lambda: None) -> None:
        if kind not in FORWARDED_MIME_TYPES:
            raise ValueError(f"unknown kind {kind!r}")
        self.kind = kind
        self.paused = False  # muted (by the publisher, a moderator, or lacking SPEAK): frames are dropped
        self.frames_in = 0
        self._request_keyframe = request_keyframe
        self._subscribers: set[ForwardedTrack] = set()

    @property
    def subscribers(self) -> frozenset[ForwardedTrack]:
        return frozenset(self._subscribers)

    def push(self, data: bytes, timestamp: int) -> None:
        self.frames_in += 1
        metrics.RECEIVED[self.kind].inc()
        if self.paused:
            return
        keyframe = self.kind == "video" and is_vp8_keyframe(data)
        for track in self._subscribers:
            track.offer(data, timestamp, keyframe)

    def request_keyframe(self) -> None:
        if self.kind == "video":
            self._request_keyframe()

    def resume(self) -> None:
        """Unpaused: video subscribers need a keyframe to start decoding again."""
        self.paused = False
        self.request_keyframe()

    def _attach(self, track: ForwardedTrack) -> None:
        self._subscribers.add(track)
        self.request_keyframe()

    def _detach(self, track: ForwardedTrack) -> None:
        self._subscribers.discard(track)


class ForwardedTrack(MediaStreamTrack):
    """What one subscriber's sender reads: the encoded frames of one publication at a time (switchable),
    as `av.Packet`s with timestamps that keep moving forward across switches. Bounded: the oldest frames
    go first when the sender falls behind."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.source: Publication | None = None
        self.deafened = False  # its subscriber deafened themself: audio offered is not sent
        self.frames_out = 0
        self.frames_dropped = 0
        self._queue: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue(maxsize=QUEUE_FRAMES[kind])
        self._clock = AUDIO_CLOCK if kind == "audio" else VIDEO_CLOCK
        self._time_base = Fraction(1, self._clock)
        self._waiting_keyframe = kind == "video"
        self._offset: int | None = None  # added to the source's timestamps
        self._last_out: int | None = None

    def switch_to(self, source: Publication | None) -> None:
        if source is not None and source.kind != self.kind:
            raise ValueError("a track forwards one kind")
        if self.source is not None:
            self.source._detach(self)
        self.source = source
        self._offset = None
        self._waiting_keyframe = self.kind == "video"
        if source is not None:
            source._attach(self)

    def offer(self, data: bytes, timestamp: int, keyframe: bool) -> None:
        if self.readyState != "live" or self.deafened:
            return
        if self._waiting_keyframe:
            if not keyframe:
                return
            self._waiting_keyframe = False
        if self._offset is None:
            start = 0 if self._last_out is None else self._last_out + FRAME_STEP[self.kind]
            self._offset = start - timestamp
        out = (timestamp + self._offset) & 0xFFFFFFFF
        self._last_out = out
        if self._queue.full():
            self._queue.get_nowait()
            self.frames_dropped += 1
            metrics.DROPPED[self.kind].inc()
            if self.kind == "video":  # a lost delta frame breaks decoding until the next keyframe
                self._waiting_keyframe = True
                if self.source is not None:
                    self.source.request_keyframe()
        self._queue.put_nowait((data, out))

    def keyframe_requested(self) -> None:
        """The subscriber's decoder lost the picture (PLI/FIR from its side): ask the publisher."""
        if self.source is not None:
            self.source.request_keyframe()

    async def recv(self) -> Any:
        item = await self._queue.get()
        if item is None:
            from aiortc.mediastreams import MediaStreamError

            raise MediaStreamError
        data, timestamp = item
        packet = av.Packet(data)
        packet.pts = timestamp
        packet.time_base = self._time_base
        self.frames_out += 1
        metrics.FORWARDED[self.kind].inc()
        return packet

    def stop(self) -> None:
        if self.readyState == "live" and self.source is not None:
            self.source._detach(self)
            self.source = None
        super().stop()
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)


# --- the taps on aiortc's objects (version-specific) ---------------------------------------------------


class _ForwardingQueue(queue.Queue[Any]):
    """Stands in for the receiver's decoder queue: frames go to `sink` on the event loop (the receiver puts
    them from its RTP handler); only the stop marker (`None`) reaches the idle decoder thread."""

    def __init__(self, sink: Callable[[bytes, int], None]) -> None:
        super().__init__()
        self._sink = sink

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(item, block, timeout)
            return
        _codec, frame = item
        try:
            self._sink(bytes(frame.data), int(frame.timestamp))
        except Exception:
            log.exception("forwarding a frame failed")


def tap_receiver(receiver: RTCRtpReceiver, publication: Publication) -> None:
    """Route `receiver`'s reassembled frames to `publication` instead of a decoder. Call before the
    connection starts the receiver (after setRemoteDescription)."""
    attribute = "_RTCRtpReceiver__decoder_queue"
    if not hasattr(receiver, attribute):
        raise RuntimeError("this aiortc version has no decoder queue to tap (see pyproject.toml's pin)")
    setattr(receiver, attribute, _ForwardingQueue(publication.push))


def media_ssrcs(receiver: RTCRtpReceiver) -> list[int]:
    streams: dict[int, Any] = getattr(receiver, "_RTCRtpReceiver__remote_streams", {})
    rtx: dict[int, int] = getattr(receiver, "_RTCRtpReceiver__rtx_ssrc", {})
    return [ssrc for ssrc in streams if ssrc not in rtx]


def keyframe_requester(receiver: RTCRtpReceiver) -> Callable[[], None]:
    """A callable that sends the publisher a PLI for each media SSRC its receiver has seen."""

    def request() -> None:
        for ssrc in media_ssrcs(receiver):
            task = asyncio.ensure_future(receiver._send_rtcp_pli(ssrc))
            task.add_done_callback(_log_failure)

    return request


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("sending a PLI failed", exc_info=task.exception())


def pass_keyframe_requests(sender: RTCRtpSender, track: ForwardedTrack) -> None:
    """A sender only forces keyframes of its own encoder; a forwarding one asks the publisher instead."""
    original = sender._send_keyframe

    def send_keyframe() -> None:
        original()
        track.keyframe_requested()

    sender._send_keyframe = send_keyframe  # type: ignore[method-assign]


def restrict_codecs(transceiver: RTCRtpTransceiver) -> bool:
    """Keep only the forwarded codec (and its RTX) in what the answer will accept; False if it is absent."""
    wanted = FORWARDED_MIME_TYPES[transceiver.kind]
    codecs = transceiver._codecs
    kept = [c for c in codecs if c.mimeType.lower() == wanted.lower()]
    if not kept:
        return False
    payload_types = {str(c.payloadType) for c in kept}
    kept += [
        c
        for c in codecs
        if c.mimeType.lower().endswith("/rtx") and str(c.parameters.get("apt")) in payload_types
    ]
    transceiver._codecs = kept
    return True
