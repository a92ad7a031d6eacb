"""The event a call's owner publishes on `channel:{id}` after every change of its participants."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from media.voice.room import ParticipantState
from subgraphs.kernel.events import Event


@dataclass(frozen=True)
class VoiceStatesChanged(Event):
    """Everyone in the call after the change (`[]`: the call ended), as JSON, so that every process's
    subscribers serve it without asking the owner."""

    channel_id: int
    states_json: str

    @classmethod
    def of(cls, channel_id: int, states: list[ParticipantState]) -> VoiceStatesChanged:
        return cls(channel_id, json.dumps([asdict(s) for s in states], separators=(",", ":")))

    def states(self) -> list[ParticipantState]:
        return [ParticipantState(**item) for item in json.loads(self.states_json)]
