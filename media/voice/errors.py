"""Why the media server refuses a request; the signalling layer maps these to the API's error codes."""

from __future__ import annotations

import enum


class Refusal(enum.StrEnum):
    INVALID_SDP = "INVALID_SDP"  # unparsable, too large, or not what a call needs (bundle, mids, codecs)
    NO_AUDIO = "NO_AUDIO"  # no microphone m-line: every participant offers one (silent is fine)
    STREAM_FORBIDDEN = "STREAM_FORBIDDEN"  # a camera or screen without STREAM
    ALREADY_IN_CALL = "ALREADY_IN_CALL"  # in another call: leave it first
    NOT_IN_CALL = "NOT_IN_CALL"
    ROOM_FULL = "ROOM_FULL"
    CONNECTION_FAILED = "CONNECTION_FAILED"  # aiortc refused the description


class VoiceRefused(Exception):
    def __init__(self, reason: Refusal, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.field = field
