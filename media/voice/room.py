"""One call: the participants' peer connections, what each publishes and which of the others' streams
each of its receive slots carries. Everything here runs on the owner process's event loop; a lock per
room orders joins, renegotiations and leaves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from media.voice.announce import Announcement, NoCandidates, rewrite_answer
from media.voice.errors import Refusal, VoiceRefused
from media.voice.forwarding import (
    ForwardedTrack,
    Publication,
    keyframe_requester,
    pass_keyframe_requests,
    restrict_codecs,
    tap_receiver,
)
from media.voice.sdp import OfferPlan

log = logging.getLogger("beep.voice")

MICROPHONE, CAMERA, SCREEN = "MICROPHONE", "CAMERA", "SCREEN"


@dataclass(frozen=True)
class VoiceConfig:
    ice_servers: tuple[RTCIceServer, ...] = ()
    room_limit: int = 16
    disconnect_timeout: float = 10.0  # seconds without a packet from a participant before it is removed
    negotiation_timeout: float = 10.0
    check_interval: float = 1.0
    # Which addresses answers announce (BEEP_VOICE_ANNOUNCED_ADDRESS, BEEP_VOICE_HOST_ADDRESSES).
    announce: Announcement = field(default_factory=Announcement)


@dataclass(frozen=True)
class ParticipantState:
    user_id: int
    self_mute: bool
    server_mute: bool
    suppressed: bool  # may not speak here (no SPEAK): its audio is not forwarded
    camera: bool
    screen: bool
    joined_at: float
    # Last, with a default: states from a node or an event that predates deafening still read.
    self_deaf: bool = False  # hears no one (and, deafened, is not heard either)


@dataclass(frozen=True)
class StreamSlot:
    mid: str
    user_id: int
    source: str


@dataclass(frozen=True)
class Answer:
    sdp: str
    streams: tuple[StreamSlot, ...]
    audio_slots_needed: int  # receive slots the client should offer for everyone to be heard and seen
    video_slots_needed: int


@dataclass
class Participant:
    user_id: int
    pc: RTCPeerConnection
    can_speak: bool
    joined_at: float = field(default_factory=time.time)
    self_mute: bool = False
    self_deaf: bool = False
    server_mute: bool = False
    roles: dict[str, str] = field(default_factory=dict)  # source -> mid, as the latest offer said
    publications: dict[str, Publication] = field(default_factory=dict)  # mid -> what it publishes
    slots: dict[str, ForwardedTrack] = field(default_factory=dict)  # mid -> what it receives there
    assigned: dict[str, tuple[int, str]] = field(default_factory=dict)  # mid -> (user id, source)
    last_packets: int = -1
    last_seen: float = field(default_factory=time.monotonic)

    def publication(self, source: str) -> Publication | None:
        mid = self.roles.get(source)
        return self.publications.get(mid) if mid is not None else None

    @property
    def sources(self) -> list[str]:
        return [s for s in (MICROPHONE, CAMERA, SCREEN) if s in self.roles]

    def state(self) -> ParticipantState:
        return ParticipantState(
            user_id=self.user_id,
            self_mute=self.self_mute,
            server_mute=self.server_mute,
            suppressed=not self.can_speak,
            camera=CAMERA in self.roles,
            screen=SCREEN in self.roles,
            joined_at=self.joined_at,
            self_deaf=self.self_deaf,
        )

    def apply_pauses(self) -> None:
        """What this participant sends and hears, from its mutes, deafness and permissions."""
        silent = self.self_mute or self.self_deaf or self.server_mute or not self.can_speak
        for source, mid in self.roles.items():
            publication = self.publications[mid]
            paused = source == MICROPHONE and silent
            if paused and not publication.paused:
                publication.paused = True
            elif not paused and publication.paused:
                publication.resume()
        for mid, publication in self.publications.items():
            if mid not in self.roles.values():
                publication.paused = True
        for track in self.slots.values():
            track.deafened = self.self_deaf and track.kind == "audio"


class Room:
    def __init__(
        self,
        channel_id: int,
        config: VoiceConfig,
        on_change: Callable[[Room], Awaitable[None]],
        on_left: Callable[[Room, int], None],
    ) -> None:
        self.channel_id = channel_id
        self.config = config
        self.participants: dict[int, Participant] = {}
        self._on_change = on_change
        self._on_left = on_left
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None

    def states(self) -> list[ParticipantState]:
        return [p.state() for p in sorted(self.participants.values(), key=lambda p: (p.joined_at, p.user_id))]

    async def join(self, user_id: int, offer: str, plan: OfferPlan, can_speak: bool) -> Answer:
        async with self._lock:
            if user_id in self.participants:
                raise VoiceRefused(
                    Refusal.ALREADY_IN_CALL, "You are in this call already; renegotiate instead."
                )
            if len(self.participants) >= self.config.room_limit:
                raise VoiceRefused(
                    Refusal.ROOM_FULL, f"This call is full ({self.config.room_limit} participants)."
                )
            pc = RTCPeerConnection(RTCConfiguration(iceServers=list(self.config.ice_servers)))
            participant = Participant(user_id, pc, can_speak)
            try:
                answer = await self._negotiate(participant, offer, plan)
            except BaseException:
                await _close_quietly(pc)
                raise
            self.participants[user_id] = participant

            @pc.on("connectionstatechange")
            async def on_state() -> None:
                if (
                    pc.connectionState in ("failed", "closed")
                    and self.participants.get(user_id) is participant
                ):
                    log.info("voice peer connection %s", pc.connectionState, extra={"user_id": user_id})
                    await self.leave(user_id)

            self._ensure_watcher()
        await self._on_change(self)
        return answer

    async def update(
        self,
        user_id: int,
        offer: str | None,
        plan: OfferPlan | None,
        *,
        can_speak: bool,
        self_mute: bool | None = None,
        self_deaf: bool | None = None,
    ) -> Answer | None:
        async with self._lock:
            participant = self._participant(user_id)
            participant.can_speak = can_speak
            if self_mute is not None:
                participant.self_mute = self_mute
            if self_deaf is not None:
                participant.self_deaf = self_deaf
            answer = None
            if offer is not None and plan is not None:
                answer = await self._negotiate(participant, offer, plan)
            else:
                participant.apply_pauses()
        await self._on_change(self)
        return answer

    async def restrict(self, user_id: int, *, can_speak: bool, can_stream: bool) -> bool:
        """Apply changed permissions at once (no renegotiation): without SPEAK the microphone is no longer
        forwarded, without STREAM the camera and screen leave the others' slots. True if anything changed."""
        async with self._lock:
            participant = self.participants.get(user_id)
            if participant is None:
                return False
            dropped = [] if can_stream else [s for s in (CAMERA, SCREEN) if s in participant.roles]
            if participant.can_speak == can_speak and not dropped:
                return False
            participant.can_speak = can_speak
            for source in dropped:
                del participant.roles[source]
                self._unassign(user_id, source)
            participant.apply_pauses()
        await self._on_change(self)
        return True

    async def moderate(self, user_id: int, *, server_mute: bool) -> None:
        async with self._lock:
            participant = self._participant(user_id)
            participant.server_mute = server_mute
            participant.apply_pauses()
        await self._on_change(self)

    async def leave(self, user_id: int) -> bool:
        async with self._lock:
            participant = self.participants.pop(user_id, None)
            if participant is None:
                return False
            for other in self.participants.values():
                for mid, (publisher, _source) in list(other.assigned.items()):
                    if publisher == user_id:
                        other.slots[mid].switch_to(None)
                        del other.assigned[mid]
            for track in participant.slots.values():
                track.stop()
            await _close_quietly(participant.pc)
            self._on_left(self, user_id)
        await self._on_change(self)
        return True

    async def close(self) -> None:
        for user_id in list(self.participants):
            await self.leave(user_id)
        if self._watcher is not None:
            self._watcher.cancel()

    def _participant(self, user_id: int) -> Participant:
        participant = self.participants.get(user_id)
        if participant is None:
            raise VoiceRefused(Refusal.NOT_IN_CALL, "You are not in this call.")
        return participant

    async def _negotiate(self, participant: Participant, offer: str, plan: OfferPlan) -> Answer:
        try:
            return await asyncio.wait_for(
                self._exchange(participant, offer, plan), self.config.negotiation_timeout
            )
        except VoiceRefused:
            raise
        except TimeoutError:
            raise VoiceRefused(
                Refusal.CONNECTION_FAILED, "The media server did not answer in time."
            ) from None
        except Exception as error:
            log.info("refused an offer: %s", error)
            raise VoiceRefused(Refusal.INVALID_SDP, "The offer could not be applied.", "offer") from None

    async def _exchange(self, participant: Participant, offer: str, plan: OfferPlan) -> Answer:
        pc = participant.pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        roles = {MICROPHONE: plan.microphone}
        if plan.camera:
            roles[CAMERA] = plan.camera
        if plan.screen:
            roles[SCREEN] = plan.screen
        publishing = set(roles.values())
        slot_mids = set(plan.audio_slots) | set(plan.video_slots)
        for transceiver in pc.getTransceivers():
            mid = transceiver.mid
            if mid is None:
                continue
            if not restrict_codecs(transceiver):
                raise VoiceRefused(Refusal.INVALID_SDP, "Audio must offer Opus and video VP8.", "offer")
            if mid in publishing:
                if mid in participant.slots:
                    raise VoiceRefused(Refusal.INVALID_SDP, "A media line cannot change role.", "offer")
                transceiver.direction = "recvonly"
                if mid not in participant.publications:
                    publication = Publication(transceiver.kind, keyframe_requester(transceiver.receiver))
                    tap_receiver(transceiver.receiver, publication)
                    participant.publications[mid] = publication
            elif mid in slot_mids:
                if mid in participant.publications:
                    raise VoiceRefused(Refusal.INVALID_SDP, "A media line cannot change role.", "offer")
                transceiver.direction = "sendonly"
                if mid not in participant.slots:
                    track = ForwardedTrack(transceiver.kind)
                    transceiver.sender.replaceTrack(track)
                    pass_keyframe_requests(transceiver.sender, track)
                    participant.slots[mid] = track
            else:
                transceiver.direction = "inactive"
        # Sources the participant stopped publishing leave the others' slots.
        dropped = [s for s in participant.roles if s not in roles]
        participant.roles = roles
        participant.apply_pauses()
        for source in dropped:
            self._unassign(participant.user_id, source)
        for mid in list(participant.assigned):
            if mid not in slot_mids:  # a slot the client gave up
                participant.slots[mid].switch_to(None)
                del participant.assigned[mid]
        await pc.setLocalDescription(await pc.createAnswer())
        sdp = self._announced(pc.localDescription.sdp)
        audio_needed, video_needed = self._assign(participant)
        return Answer(
            sdp=sdp,
            streams=tuple(StreamSlot(mid, *who) for mid, who in sorted(participant.assigned.items())),
            audio_slots_needed=audio_needed,
            video_slots_needed=video_needed,
        )

    def _announced(self, sdp: str) -> str:
        try:
            return rewrite_answer(sdp, self.config.announce)
        except NoCandidates:
            # The configured host addresses were there at start (the channels app checks) and have gone.
            log.error(
                "voice answer refused: no candidate on BEEP_VOICE_HOST_ADDRESSES (%s), nor a STUN/TURN one",
                ", ".join(sorted(map(str, self.config.announce.host_addresses))),
            )
            raise VoiceRefused(
                Refusal.CONNECTION_FAILED, "The media server has no network address to offer."
            ) from None

    def _unassign(self, user_id: int, source: str) -> None:
        for other in self.participants.values():
            for mid, who in list(other.assigned.items()):
                if who == (user_id, source):
                    other.slots[mid].switch_to(None)
                    del other.assigned[mid]

    def _assign(self, subscriber: Participant) -> tuple[int, int]:
        """Fill the subscriber's free slots with the others' streams; return how many slots of each kind
        it needs in all."""
        wanted = [
            (other.user_id, source)
            for other in sorted(self.participants.values(), key=lambda p: (p.joined_at, p.user_id))
            if other is not subscriber
            for source in other.sources
        ]
        held = set(subscriber.assigned.values())
        for mid, who in list(subscriber.assigned.items()):
            if who not in wanted:
                subscriber.slots[mid].switch_to(None)
                del subscriber.assigned[mid]
                held.discard(who)
        for who in wanted:
            if who in held:
                continue
            publisher = self.participants[who[0]]
            publication = publisher.publication(who[1])
            if publication is None:
                continue
            free = next(
                (
                    mid
                    for mid, track in subscriber.slots.items()
                    if track.kind == publication.kind and mid not in subscriber.assigned
                ),
                None,
            )
            if free is None:
                continue
            subscriber.slots[free].switch_to(publication)
            subscriber.assigned[free] = who
        audio = sum(1 for _user, source in wanted if source == MICROPHONE)
        return audio, len(wanted) - audio

    def _ensure_watcher(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        """Removes participants whose connection went quiet: no packet (media or RTCP, which every
        WebRTC peer sends at least every few seconds) for `disconnect_timeout` seconds."""
        while self.participants:
            await asyncio.sleep(self.config.check_interval)
            now = time.monotonic()
            for participant in list(self.participants.values()):
                try:
                    stats = await participant.pc.getStats()
                except Exception:
                    packets = participant.last_packets
                else:
                    packets = sum(
                        getattr(s, "packetsReceived", 0) or 0 for s in stats.values() if s.type == "transport"
                    )
                if packets != participant.last_packets:
                    participant.last_packets = packets
                    participant.last_seen = now
                elif now - participant.last_seen > self.config.disconnect_timeout:
                    log.info("voice participant timed out", extra={"user_id": participant.user_id})
                    await self.leave(participant.user_id)


async def _close_quietly(pc: RTCPeerConnection) -> None:
    with contextlib.suppress(Exception):
        await pc.close()
