"""Voice SFU benchmark: calls of N participants (the hub directly, no API), each
sending a tone (and a 320x240 VP8 camera with --video) and receiving everyone else. Reports delivered/sent
frame ratio, process CPU per delivered frame, and join time.

The SFU runs in the benchmark's process and every participant in its own (their receivers tapped like
the SFU's: frames counted, not decoded; their senders encode Opus/VP8): the CPU figures are the SFU's
alone, but all processes share this machine's cores.

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
from tests.harness.voice_peers import VoicePeer, answer_fields


class Counter(Publication):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)


async def _quiet(_channel: int, _states: list[ParticipantState]) -> None:
    return None


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


def _client_main(conn: Any, frequency: float, video: bool) -> None:
    """One participant in its own process: offers when asked, applies answers, reports counts."""
    asyncio.run(_client(conn, frequency, video))


async def _client(conn: Any, frequency: float, video: bool) -> None:
    peer = CountingPeer(frequency, camera=video)
    while True:
        command, argument = await asyncio.to_thread(conn.recv)
        if command == "offer":
            if argument:
                peer.expect(argument)
            conn.send(await peer.offer())
        elif command == "answer":
            await peer.accept(argument)
            conn.send(None)
        elif command == "counts":
            conn.send(
                (_sent(peer, "audio"), _sent(peer, "video"), peer.delivered("audio"), peer.delivered("video"))
            )
        else:
            await peer.close()
            conn.send(None)
            return


class Remote:
    """The parent's handle on a participant process."""

    def __init__(self, user_id: int, frequency: float, video: bool) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.user_id = user_id
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_client_main, args=(child, frequency, video), daemon=True)
        self.process.start()

    async def ask(self, command: str, argument: Any = None) -> Any:
        self.conn.send((command, argument))
        return await asyncio.to_thread(self.conn.recv)


async def run_call(
    hub: VoiceHub, channel: int, n: int, video: bool, base_user: int
) -> tuple[list[Remote], list[float]]:
    remotes = [Remote(base_user + i, 300.0 + 50 * i, video) for i in range(n)]
    joins = []
    for remote in remotes:
        offer = await remote.ask("offer")
        started = time.monotonic()  # from the offer's arrival to the answer applied by the client
        answer = await hub.join(
            channel,
            remote.user_id,
            offer["sdp"],
            camera_mid=offer["cameraMid"],
            screen_mid=None,
            can_speak=True,
            can_stream=True,
        )
        await remote.ask("answer", answer_fields(answer))
        joins.append(time.monotonic() - started)
    for remote in remotes:  # everyone renegotiates once the call is complete
        offer = await remote.ask("offer", [(video, False)] * (n - 1))
        _c, answer = await hub.update(
            remote.user_id,
            offer["sdp"],
            camera_mid=offer["cameraMid"],
            screen_mid=None,
            can_speak=True,
            can_stream=True,
            self_mute=None,
        )
        assert answer is not None
        await remote.ask("answer", answer_fields(answer))
    return remotes, joins


async def measure(n: int, calls: int, video: bool, seconds: float, settle: float = 5) -> dict[str, Any]:
    """The SFU runs in this process, every participant in its own: the CPU figure is the SFU's alone."""
    hub = VoiceHub(VoiceConfig(room_limit=100), _quiet)
    everyone: list[Remote] = []
    joins: list[float] = []
    for c in range(calls):
        remotes, took = await run_call(hub, 100 + c, n, video, 1000 * (c + 1))
        everyone += remotes
        joins += took
    await asyncio.sleep(settle)  # connections up, keyframes through
    before = [await r.ask("counts") for r in everyone]
    fan0 = _fan(hub)
    cpu0, wall0 = _cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = _cpu() - cpu0, time.monotonic() - wall0
    fan = [b - a for a, b in zip(fan0, _fan(hub), strict=True)]
    after = [await r.ask("counts") for r in everyone]
    delta = [sum(a[i] - b[i] for a, b in zip(after, before, strict=True)) for i in range(4)]
    sent = {"audio": delta[0], "video": delta[1]}
    got = {"audio": delta[2], "video": delta[3]}
    expected = {k: sent[k] * (n - 1) for k in sent}  # each frame goes to the n-1 others
    delivered = sum(got.values())
    result = {
        "participants": n,
        "calls": calls,
        "video": video,
        "sent_per_s": {k: round(v / wall, 1) for k, v in sent.items()},
        "audio_delivered_ratio": round(got["audio"] / expected["audio"], 3) if expected["audio"] else None,
        "video_delivered_ratio": round(got["video"] / expected["video"], 3) if expected["video"] else None,
        # What the SFU itself put on the wire (frames its senders took) over what it had to forward:
        # below 1, the SFU is the bottleneck; above the clients' ratio, they are.
        "sfu_forwarded_ratio": round(fan[1] / fan[0], 3) if fan[0] else None,
        "sfu_cpu_percent_of_a_core": round(100 * cpu / wall, 1),
        "sfu_cpu_us_per_delivered_frame": round(1e6 * cpu / delivered, 1) if delivered else None,
        "sfu_cpu_us_per_forwarded_frame": round(1e6 * cpu / fan[1], 1) if fan[1] else None,
        "join_ms_median": round(1000 * sorted(joins)[len(joins) // 2], 1),
        "join_ms_max": round(1000 * max(joins), 1),
    }
    for remote in everyone:
        await remote.ask("stop")
        remote.process.join(timeout=10)
    await hub.close()
    return result


def _sent(peer: CountingPeer, kind: str) -> int:
    if kind == "audio":
        return peer.tone.frames_sent
    track = peer.camera.sender.track if peer.camera else None
    return getattr(track, "frames_sent", 0)


def _fan(hub: VoiceHub) -> tuple[int, int]:
    """(frames owed to subscribers, frames the SFU's senders took) over every call."""
    owed = taken = 0
    for channel in list(hub._rooms):
        room = hub.room(channel)
        assert room is not None
        for participant in room.participants.values():
            for publication in participant.publications.values():
                owed += publication.frames_in * len(publication.subscribers)
            taken += sum(track.frames_out for track in participant.slots.values())
    return owed, taken


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
