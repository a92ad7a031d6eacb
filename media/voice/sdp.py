"""Reading a client's offer before aiortc does: what it publishes (microphone, camera, screen) and where
it can receive the others (its receive "slots"). The client always offers (no glare): one sending audio
m-line is its microphone, the video m-lines it names as camera and screen are those, and every other m-line
that can receive is a slot the server fills with another participant's stream."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiortc import sdp

from media.voice.errors import Refusal, VoiceRefused

MAX_SDP_BYTES = 64 * 1024
MAX_MEDIA_LINES = 64
MID = re.compile(r"[A-Za-z0-9_.{}-]{1,64}")  # RFC 8843 token chars browsers use, bounded
SENDING = ("sendonly", "sendrecv")
RECEIVING = ("recvonly", "sendrecv")


@dataclass(frozen=True)
class OfferPlan:
    microphone: str  # mid
    camera: str | None
    screen: str | None
    audio_slots: tuple[str, ...]
    video_slots: tuple[str, ...]

    @property
    def publishes_video(self) -> bool:
        return self.camera is not None or self.screen is not None


def read_offer(text: str, camera_mid: str | None = None, screen_mid: str | None = None) -> OfferPlan:
    if len(text.encode()) > MAX_SDP_BYTES:
        raise VoiceRefused(Refusal.INVALID_SDP, "The offer is too large.", "offer")
    try:
        description = sdp.SessionDescription.parse(text)
    except Exception:
        raise VoiceRefused(Refusal.INVALID_SDP, "The offer is not valid SDP.", "offer") from None
    media = description.media
    if not media:
        raise VoiceRefused(Refusal.INVALID_SDP, "The offer has no media.", "offer")
    if len(media) > MAX_MEDIA_LINES:
        raise VoiceRefused(Refusal.INVALID_SDP, f"At most {MAX_MEDIA_LINES} media lines.", "offer")
    mids: dict[str, sdp.MediaDescription] = {}
    for line in media:
        if line.kind not in ("audio", "video"):
            raise VoiceRefused(Refusal.INVALID_SDP, "Only audio and video media are accepted.", "offer")
        mid = line.rtp.muxId
        if not mid or mid in mids or not MID.fullmatch(mid):
            raise VoiceRefused(Refusal.INVALID_SDP, "Every media line needs its own mid.", "offer")
        if line.ice is None or not line.ice.usernameFragment or not line.dtls or not line.dtls.fingerprints:
            raise VoiceRefused(
                Refusal.INVALID_SDP, "Every media line needs ICE and DTLS parameters.", "offer"
            )
        wanted = "opus" if line.kind == "audio" else "vp8"
        if line.direction != "inactive" and not any(
            c.mimeType.lower().endswith("/" + wanted) for c in line.rtp.codecs
        ):
            raise VoiceRefused(
                Refusal.INVALID_SDP, f"{line.kind.capitalize()} must offer {wanted.upper()}.", "offer"
            )
        mids[mid] = line
    for name, named in (("cameraMid", camera_mid), ("screenMid", screen_mid)):
        if named is None:
            continue
        video = mids.get(named)
        if video is None or video.kind != "video" or video.direction not in SENDING:
            raise VoiceRefused(Refusal.INVALID_SDP, "This must name a video media line that sends.", name)
    if camera_mid is not None and camera_mid == screen_mid:
        raise VoiceRefused(
            Refusal.INVALID_SDP, "The camera and the screen need their own media lines.", "screenMid"
        )
    microphone = next(
        (mid for mid, line in mids.items() if line.kind == "audio" and line.direction in SENDING), None
    )
    if microphone is None:
        raise VoiceRefused(
            Refusal.NO_AUDIO, "The offer must send audio (a microphone; muting is separate).", "offer"
        )
    published = {microphone, camera_mid, screen_mid}
    slots = [
        (mid, line.kind) for mid, line in mids.items() if mid not in published and line.direction in RECEIVING
    ]
    return OfferPlan(
        microphone=microphone,
        camera=camera_mid,
        screen=screen_mid,
        audio_slots=tuple(mid for mid, kind in slots if kind == "audio"),
        video_slots=tuple(mid for mid, kind in slots if kind == "video"),
    )
