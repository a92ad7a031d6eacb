"""Voice SFU benchmark: one call of N participants in this process (the hub directly, no API), each
sending a tone (and a 320x240 VP8 camera with --video) and receiving everyone else. Reports delivered/sent
frame ratio, process CPU per delivered frame, and join time.

The participants' receivers are tapped like the SFU's (frames counted, not decoded), but their senders
encode (Opus, VP8) in this same process: the CPU figure is an upper bound of the SFU's own cost.

    python -m bench.voice --participants 2 4 8 --seconds 10 [--video] [--calls 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from typing import Any

from media.voice.forwarding import Publication, tap_receiver
from media.voice.hub import VoiceHub
from media.voice.room import ParticipantState, VoiceConfig
from tests.harness.voice_peers import VoicePeer


class Counter(Publication):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)


async def _quiet(_channel: int, _states: list[ParticipantState]) -> None:
    return None


def _answer(answer: Any) -> dict[str, Any]:
    return {
        "sdp": answer.sdp,
        "audioSlotsNeeded": answer.audio_slots_needed,
        "videoSlotsNeeded": answer.video_slots_needed,
        "streams": [{"mid": s.mid, "userId": s.user_id, "source": s.source} for s in answer.streams],
    }


class CountingPeer(VoicePeer):
    """Taps its receive slots before any decoder, like the SFU: counts frames, decodes nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counters: dict[str, Counter] = {}

    async def offer(self) -> dict[str, Any]:
        offer = await super().offer()
        for transceiver in self._slots:
            if transceiver.mid not in self.counters:
                counter = self.counters[transceiver.mid] = Counter(transceiver.kind)
                tap_receiver(transceiver.receiver, counter)
        return offer

    async def accept(self, answer: dict[str, Any]) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        self.audio_needed, self.video_needed = answer["audioSlotsNeeded"], answer["videoSlotsNeeded"]

    def delivered(self, kind: str) -> int:
        return sum(c.frames_in for c in self.counters.values() if c.kind == kind)


async def run_call(
    hub: VoiceHub, channel: int, n: int, video: bool, base_user: int
) -> tuple[list[CountingPeer], list[float]]:
    peers: list[CountingPeer] = []
    joins = []
    for i in range(n):
        user = base_user + i
        peer = CountingPeer(300.0 + 50 * i, camera=video)
        started = time.monotonic()
        offer = await peer.offer()
        answer = await hub.join(
            channel,
            user,
            offer["sdp"],
            camera_mid=offer["cameraMid"],
            screen_mid=None,
            can_speak=True,
            can_stream=True,
        )
        await peer.accept(_answer(answer))
        joins.append(time.monotonic() - started)
        peers.append(peer)
    for i, peer in enumerate(peers):  # everyone renegotiates once the call is complete
        peer.expect([(video, False)] * (n - 1))
        offer = await peer.offer()
        _c, answer = await hub.update(
            base_user + i,
            offer["sdp"],
            camera_mid=offer["cameraMid"],
            screen_mid=None,
            can_speak=True,
            can_stream=True,
            self_mute=None,
        )
        assert answer is not None
        await peer.accept(_answer(answer))
    return peers, joins


async def measure(n: int, calls: int, video: bool, seconds: float, settle: float = 8) -> dict[str, Any]:
    hub = VoiceHub(VoiceConfig(room_limit=100), _quiet)
    everyone: list[CountingPeer] = []
    joins: list[float] = []
    for c in range(calls):
        peers, took = await run_call(hub, 100 + c, n, video, 1000 * (c + 1))
        everyone += peers
        joins += took
    await asyncio.sleep(settle)  # connections up, keyframes through
    sent0 = {k: sum(_sent(p, k) for p in everyone) for k in ("audio", "video")}
    got0 = {k: sum(p.delivered(k) for p in everyone) for k in ("audio", "video")}
    cpu0, wall0 = _cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = _cpu() - cpu0, time.monotonic() - wall0
    sent = {k: sum(_sent(p, k) for p in everyone) - sent0[k] for k in sent0}
    got = {k: sum(p.delivered(k) for p in everyone) - got0[k] for k in got0}
    expected = {k: sent[k] * (n - 1) for k in sent}  # each frame goes to the n-1 others
    delivered = sum(got.values())
    result = {
        "participants": n,
        "calls": calls,
        "video": video,
        "audio_delivered_ratio": round(got["audio"] / expected["audio"], 3) if expected["audio"] else None,
        "video_delivered_ratio": round(got["video"] / expected["video"], 3) if expected["video"] else None,
        "cpu_percent_of_a_core": round(100 * cpu / wall, 1),
        "cpu_us_per_delivered_frame": round(1e6 * cpu / delivered, 1) if delivered else None,
        "join_ms_median": round(1000 * sorted(joins)[len(joins) // 2], 1),
        "join_ms_max": round(1000 * max(joins), 1),
    }
    for peer in everyone:
        await peer.close()
    await hub.close()
    return result


def _sent(peer: CountingPeer, kind: str) -> int:
    if kind == "audio":
        return peer.tone.frames_sent
    track = peer.camera.sender.track if peer.camera else None
    return getattr(track, "frames_sent", 0)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--participants", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--video", action="store_true")
    args = parser.parse_args()
    for n in args.participants:
        print(json.dumps(asyncio.run(measure(n, args.calls, args.video, args.seconds))), flush=True)


if __name__ == "__main__":
    main()
