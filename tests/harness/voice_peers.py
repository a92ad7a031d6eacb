"""Synthetic WebRTC peers for voice tests and the benchmark: a tone per sender (so a listener can tell who
it hears), a moving test pattern for cameras and screens, and counters on what arrives."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from array import array
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

SAMPLE_RATE = 48_000
AUDIO_PTIME = 0.02


class ToneTrack(MediaStreamTrack):
    """A sine tone at `frequency` Hz, 20 ms frames paced by the clock."""

    kind = "audio"

    def __init__(self, frequency: float, amplitude: int = 8000) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self.frames_sent = 0
        self._samples = int(SAMPLE_RATE * AUDIO_PTIME)
        self._start: float | None = None
        self._pts = 0
        # One second of the tone, computed once (a whole number of periods for whole-Hz tones).
        step = 2 * math.pi * frequency / SAMPLE_RATE
        self._second = array("h", (int(amplitude * math.sin(step * i)) for i in range(SAMPLE_RATE))) * 2

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._pts / SAMPLE_RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        offset = self._pts % SAMPLE_RATE
        samples = self._second[offset : offset + self._samples]
        frame = av.AudioFrame(format="s16", layout="mono", samples=self._samples)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = Fraction(1, SAMPLE_RATE)
        self._pts += self._samples
        self.frames_sent += 1
        return frame


class PatternTrack(MediaStreamTrack):
    """A moving gradient, `width`x`height` at `fps` (a camera or a shared screen)."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: int = 15, shade: int = 0) -> None:
        super().__init__()
        self.width, self.height, self.fps, self.shade = width, height, fps, shade
        self.frames_sent = 0
        self._start: float | None = None
        self._rows = [bytes((x + y + shade) % 256 for x in range(width)) for y in range(height)]

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self.frames_sent / self.fps - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        n = self.frames_sent
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        shift = (n * 4) % self.height
        luma = b"".join(self._rows[(y + shift) % self.height] for y in range(self.height))
        frame.planes[0].update(_fit(luma, frame.planes[0]))
        chroma = bytes([128 + (n % 32)]) * frame.planes[1].buffer_size
        frame.planes[1].update(chroma)
        frame.planes[2].update(bytes([128]) * frame.planes[2].buffer_size)
        frame.pts = n * (90_000 // self.fps)
        frame.time_base = Fraction(1, 90_000)
        self.frames_sent += 1
        return frame


def _fit(data: bytes, plane: Any) -> bytes:
    """Rows padded to the plane's line size."""
    width = plane.width
    if plane.line_size == width:
        return data
    pad = bytes(plane.line_size - width)
    return b"".join(data[y * width : (y + 1) * width] + pad for y in range(plane.height))


@dataclass
class Received:
    """What one incoming track delivered: frame count, arrival times, and recent audio samples."""

    kind: str
    frames: int = 0
    arrivals: list[float] = field(default_factory=list)
    samples: array = field(default_factory=lambda: array("h"))
    sizes: set[tuple[int, int]] = field(default_factory=set)
    ended: bool = False

    def frames_since(self, moment: float) -> int:
        return sum(1 for t in self.arrivals if t >= moment)

    def frequency(self) -> float:
        """The dominant frequency of the last second of audio, from zero crossings (one tone per track)."""
        tail = self.samples[-SAMPLE_RATE:]
        crossings = sum(1 for a, b in itertools.pairwise(tail) if (a < 0) != (b < 0))
        return crossings / 2 / (len(tail) / SAMPLE_RATE) if len(tail) > SAMPLE_RATE // 4 else 0.0


async def consume(track: MediaStreamTrack, into: Received, keep_samples: bool = True) -> None:
    """Read `track` until it ends, recording what arrives (decoded, as a browser would)."""
    with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
        while True:
            frame = await track.recv()
            into.frames += 1
            into.arrivals.append(time.monotonic())
            if into.kind == "audio" and keep_samples:
                raw = array("h", bytes(frame.planes[0]))
                channels = len(frame.layout.channels)
                into.samples.extend(raw[::channels][: frame.samples])
                if len(into.samples) > 4 * SAMPLE_RATE:
                    del into.samples[: -2 * SAMPLE_RATE]
            elif into.kind == "video":
                into.sizes.add((frame.width, frame.height))
    into.ended = True


class VoicePeer:
    """A call participant the way a browser would be one: it always offers — its microphone (a tone),
    optionally a camera and a screen, and as many receive slots as the last answer said it needs — and
    reads every stream the server forwards, decoded."""

    def __init__(
        self,
        frequency: float,
        *,
        camera: bool = False,
        ice_servers: list[Any] | None = None,
        force_relay: bool = False,
    ) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection
        from aiortc.rtcconfiguration import RTCIceTransportPolicy

        policy = RTCIceTransportPolicy.RELAY if force_relay else RTCIceTransportPolicy.ALL
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers or [], iceTransportPolicy=policy))
        self.tone = ToneTrack(frequency)
        self.microphone = self.pc.addTransceiver(self.tone, direction="sendonly")
        self.camera = self.pc.addTransceiver(PatternTrack(), direction="sendonly") if camera else None
        self.screen: Any = None
        self.audio_needed = 0
        self.video_needed = 0
        self.streams: dict[str, tuple[str, str]] = {}  # mid -> (user id, source)
        self.received: dict[str, Received] = {}
        self._tasks: list[asyncio.Future[None]] = []
        self._slots: list[Any] = []

    def expect(self, others: list[tuple[bool, bool]]) -> None:
        """What a client does on a voice-state event: one audio slot per other participant, one video slot
        per camera and per screen among them ((camera, screen) of each other participant)."""
        self.audio_needed = max(self.audio_needed, len(others))
        self.video_needed = max(self.video_needed, sum(int(c) + int(s) for c, s in others))

    def share_screen(self) -> None:
        self.screen = self.pc.addTransceiver(PatternTrack(640, 360, fps=5, shade=90), direction="sendonly")

    async def offer(self) -> dict[str, Any]:
        have = {"audio": 0, "video": 0}
        for transceiver in self._slots:
            have[transceiver.kind] += 1
        for kind, needed in (("audio", self.audio_needed), ("video", self.video_needed)):
            for _ in range(needed - have[kind]):
                self._slots.append(self.pc.addTransceiver(kind, direction="recvonly"))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return {
            "sdp": self.pc.localDescription.sdp,
            "cameraMid": self.camera.mid if self.camera else None,
            "screenMid": self.screen.mid if self.screen else None,
        }

    async def accept(self, answer: dict[str, Any]) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        self.audio_needed = answer["audioSlotsNeeded"]
        self.video_needed = answer["videoSlotsNeeded"]
        self.streams = {s["mid"]: (str(s["userId"]), s["source"]) for s in answer["streams"]}
        for transceiver in self._slots:
            if transceiver.mid not in self.received and transceiver.receiver.track is not None:
                into = self.received[transceiver.mid] = Received(transceiver.kind)
                self._tasks.append(asyncio.ensure_future(consume(transceiver.receiver.track, into)))

    def from_(self, user_id: Any, source: str = "MICROPHONE") -> Received | None:
        for mid, who in self.streams.items():
            if who == (str(user_id), source):
                return self.received.get(mid)
        return None

    def mute(self, muted: bool) -> None:
        """What a browser does on mute: stop sending without renegotiating."""
        self.microphone.sender.replaceTrack(None if muted else self.tone)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


def hears(peer: VoicePeer, user_id: Any, tone: float) -> bool:
    """`peer` receives `user_id`'s microphone, more than a second of it, at `tone` Hz (within 5 %)."""
    got = peer.from_(user_id)
    return got is not None and got.frames > 60 and abs(got.frequency() - tone) < tone * 0.05


async def wait_until(predicate: Any, timeout: float = 20.0, message: str = "timed out") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        await asyncio.sleep(0.05)


def answer_fields(answer: Any) -> dict[str, Any]:
    """A media hub's `Answer` in the API's shape (what `VoicePeer.accept` reads)."""
    return {
        "sdp": answer.sdp,
        "audioSlotsNeeded": answer.audio_slots_needed,
        "videoSlotsNeeded": answer.video_slots_needed,
        "streams": [{"mid": s.mid, "userId": s.user_id, "source": s.source} for s in answer.streams],
    }
